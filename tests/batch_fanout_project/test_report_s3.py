"""What the project's Airflow tasks read and write in an ``s3://`` results store: the run's report and
failure records."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from batch_fanout.notifications.failure import RunFailureNotifier
from batch_fanout_project.pipeline import read_json
from batch_fanout_project.report import summarize_report

REPORT = {
    "summary": {
        "workloads": ["stress"],
        "complete": True,
        "stress": {"tests": 2, "results": 2, "stress_ng_versions": ["0.15.06"]},
        "missing": {"stress": [], "shortest_path": []},
    },
    "stress": [
        {"method": "fft", "bogo_ops_per_second_real": 1200.0},
        {"method": "int64", "bogo_ops_per_second_real": 3400.0},
    ],
}


def test_the_report_task_reads_a_report_on_s3(s3_bucket: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(
        Bucket="batch-fanout-results", Key="runs/dag_a/run_1/report/report.json", Body=json.dumps(REPORT)
    )
    result = summarize_report(f"{s3_bucket}/runs/dag_a/run_1")
    assert result["report_html"] == f"{s3_bucket}/runs/dag_a/run_1/report/report.html"
    assert result["headlines"][:3] == [
        "complete: True",
        "stress-ng tests: 2 of 2 reported",
        "fastest CPU method: int64 at 3,400 bogo-ops/s (stress-ng 0.15.06)",
    ]


def test_a_missing_report_on_s3_is_named(s3_bucket: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"runs/dag_a/run_2/report/report\.json does not exist"):
        summarize_report(f"{s3_bucket}/runs/dag_a/run_2")


def test_the_failure_notifier_writes_its_record_to_s3(s3_bucket: str) -> None:
    record: dict[str, Any] = {"dag_id": "dag_a", "run_id": "run_3", "task_id": "watch", "error": "boom"}
    RunFailureNotifier(results_uri=f"{s3_bucket}/runs")._write(record)
    assert read_json(f"{s3_bucket}/runs/dag_a/run_3/_failures/watch.json") == record
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="batch-fanout-results")
    assert [item["Key"] for item in listed["Contents"]] == ["runs/dag_a/run_3/_failures/watch.json"]
