"""The ``batch_fanout`` DAG end to end on the local AWS Batch endpoint: real stress-ng, real shortest
paths, the real aggregator, run by Airflow's ``dag.test()``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

TINY = {"tests": 3, "stress_duration": 1, "grid": "20x20", "seed": 7}


def run_folder(results_uri: str, dag_run: Any) -> Path:
    return Path(urlparse(results_uri).path) / dag_run.dag_id / dag_run.run_id


def report_of(results_uri: str, dag_run: Any) -> dict[str, Any]:
    return json.loads((run_folder(results_uri, dag_run) / "report" / "report.json").read_text())


def jobs_by_id(batch_client: Any, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    described = batch_client.describe_jobs(jobs=job_ids)["jobs"]
    return {job["jobId"]: job for job in described}


@pytest.mark.slow
def test_all_at_once_runs_both_workloads_and_batch_gates_every_job(
    run_all_at_once: Any, pipeline_settings: str, batch_client: Any, xcom: Any
) -> None:
    # No job can start before the aggregator, the last one submitted, is in Batch.
    dag_run, jobs = run_all_at_once(
        "batch_fanout",
        TINY,
        stages=("leader", "stress_ng", "shortest_path", "aggregator"),
        last_job="batch-fanout-aggregator",
    )

    report = report_of(pipeline_settings, dag_run)
    summary = report["summary"]
    manifest = json.loads((run_folder(pipeline_settings, dag_run) / "manifest.json").read_text())
    assert summary["complete"] is True
    assert summary["stress"]["tests"] == summary["stress"]["results"] == 3
    assert len(set(summary["stress"]["methods"])) == 3
    assert summary["stress"]["methods"] == manifest["methods"]
    assert summary["shortest_path"]["shards"] == summary["shortest_path"]["shard_results"] == 3
    assert summary["shortest_path"]["origins"] == manifest["graph"]["nodes"]
    assert summary["shortest_path"]["origins_with_results"] == manifest["graph"]["nodes"]
    assert {row["method"] for row in report["stress"]} == set(manifest["methods"])
    assert (run_folder(pipeline_settings, dag_run) / "report" / "report.html").stat().st_size > 1000
    assert xcom(dag_run, "report")["report_html"].endswith("/report/report.html")

    ids = {name: job["jobId"] for name, job in jobs.items()}
    leader = jobs["leader"]
    stress_children = jobs_by_id(batch_client, [f"{ids['stress_ng']}:{i}" for i in range(3)])
    path_children = jobs_by_id(batch_client, [f"{ids['shortest_path']}:{i}" for i in range(3)])
    for index in range(3):
        stress_child = stress_children[f"{ids['stress_ng']}:{index}"]
        path_child = path_children[f"{ids['shortest_path']}:{index}"]
        assert stress_child["startedAt"] >= leader["stoppedAt"]
        # N_TO_N: shard i starts only once stress test i is done ...
        assert path_child["startedAt"] >= stress_child["stoppedAt"], index
    # ... and not only once every test is done.
    assert min(job["startedAt"] for job in path_children.values()) < max(
        job["stoppedAt"] for job in stress_children.values()
    )
    aggregator = jobs["aggregator"]
    assert aggregator["startedAt"] >= max(job["stoppedAt"] for job in path_children.values())


@pytest.mark.slow
def test_a_child_that_fails_once_is_retried_alone_and_the_report_is_unchanged(
    project_dag: Any, run_dag: Any, pipeline_settings: str, batch_client: Any, xcom: Any
) -> None:
    clean = run_dag(project_dag("batch_fanout_stage_by_stage"), conf=TINY)
    assert clean.state == "success"
    injected = run_dag(project_dag("batch_fanout_stage_by_stage"), conf={**TINY, "fail_once_indices": "1"})
    assert injected.state == "success"
    # One DAG per mode: no task of the other mode, nothing skipped.
    assert {ti.state for ti in injected.get_task_instances()} == {"success"}

    stress_task = next(ti for ti in injected.get_task_instances() if ti.task_id == "run_stress_ng")
    assert stress_task.try_number == 2, "the stress-ng task should have needed exactly one retry"
    # The retry's job worked on logical index 1 only; the other children were not run again.
    assert str(xcom(injected, "run_stress_ng", key="index_map")) == "1"
    retried = batch_client.describe_jobs(jobs=[xcom(injected, "run_stress_ng")])["jobs"][0]
    assert "arrayProperties" not in retried or retried["arrayProperties"].get("size") in (None, 1)
    folder = run_folder(pipeline_settings, injected)
    assert (folder / "_fail-once" / "stress-1").exists()

    clean_report, injected_report = (
        report_of(pipeline_settings, clean),
        report_of(pipeline_settings, injected),
    )
    assert injected_report["summary"] == clean_report["summary"]
    assert injected_report["shortest_paths"] == clean_report["shortest_paths"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("tests", 0, "less than the minimum of 1"),
        ("grid", "big", "does not match"),
        ("methods", "fft; rm -rf /", "does not match"),
        ("fail_once_indices", "1,x", "does not match"),
    ],
)
def test_out_of_range_parameters_are_refused_naming_the_parameter(
    project_dag: Any, airflow_db: Path, name: str, value: Any, message: str
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(project_dag("batch_fanout").params)
    with pytest.raises(ParamValidationError, match=f"param {name}: .*{message}"):
        params[name] = value
        params.validate()
