"""``stress_ng_leader_follower`` end to end: real stress-ng children fanned out from the leader's list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest


@pytest.mark.slow
def test_leader_follower_reports_every_test_the_leader_listed(
    project_dag: Any, run_dag: Any, pipeline_settings: str, batch_client: Any, xcom: Any
) -> None:
    conf = {
        "tests": 3,
        "stress_duration": 1,
        "methods": "fft,int64,matrixprod,trig",
        "exclude_methods": "trig",
    }
    dag_run = run_dag(project_dag("stress_ng_leader_follower"), conf=conf)
    assert dag_run.state == "success"

    folder = Path(urlparse(pipeline_settings).path) / dag_run.dag_id / dag_run.run_id
    tests = (folder / "stress-tests.txt").read_text().splitlines()
    assert [line.split("--cpu-method ")[1].split()[0] for line in tests] == ["fft", "int64", "matrixprod"]
    assert all("-t 1s" in line for line in tests)
    report = json.loads((folder / "report" / "report.json").read_text())
    assert report["summary"]["complete"] is True
    assert report["summary"]["workloads"] == ["stress"]
    assert sorted(row["method"] for row in report["stress"]) == ["fft", "int64", "matrixprod"]
    assert all(row["bogo_ops"] > 0 for row in report["stress"])

    leader_id = xcom(dag_run, "submit_leader")
    followers_id = xcom(dag_run, "submit_followers")
    followers = batch_client.describe_jobs(jobs=[followers_id])["jobs"][0]
    assert followers["arrayProperties"]["size"] == 3
    assert followers["dependsOn"] == [{"jobId": leader_id, "type": "N_TO_N"}]
    assert followers["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3


@pytest.mark.slow
def test_a_failed_follower_fails_the_run_and_clearing_its_submit_task_reruns_only_it(
    *, project_dag: Any, run_dag: Any, resume_run: Any, pipeline_settings: str, batch_client: Any, xcom: Any
) -> None:
    dag = project_dag("stress_ng_leader_follower")
    conf = {"tests": 3, "stress_duration": 1, "methods": "fft,int64,trig", "fail_once_indices": "2"}
    failed = run_dag(dag, conf=conf)
    assert failed.state == "failed"
    states = {ti.task_id: ti.state for ti in failed.get_task_instances()}
    assert states["watch_followers"] == "failed"
    first_array = xcom(failed, "submit_followers")

    # What a user does in the UI: clear the follower task with its downstream tasks.
    resumed = resume_run(dag, failed, clear_failed=False, clear_tasks=["submit_followers"])
    assert resumed.state == "success"
    second = xcom(resumed, "submit_followers")
    assert second != first_array
    rerun = batch_client.describe_jobs(jobs=[second])["jobs"][0]
    assert "arrayProperties" not in rerun or not rerun["arrayProperties"].get("size")
    environment = {item["name"]: item["value"] for item in rerun["container"]["environment"]}
    assert environment["BATCH_FANOUT_INDEX_MAP"] == "2"

    folder = Path(urlparse(pipeline_settings).path) / resumed.dag_id / resumed.run_id
    report = json.loads((folder / "report" / "report.json").read_text())
    assert report["summary"]["complete"] is True
    assert sorted(row["method"] for row in report["stress"]) == ["fft", "int64", "trig"]
