"""``job_dependency_graph``: six jobs submitted at once, run in the order their dependencies allow."""

from __future__ import annotations

from typing import Any

import pytest

GRAPH = {"A": [], "B": ["A"], "C": ["A"], "D": ["A", "B"], "E": ["C"], "F": ["D", "E"]}


@pytest.mark.slow
def test_six_jobs_are_submitted_at_once_and_batch_keeps_their_order(
    *,
    capacity_held_until_submitted: Any,
    project_dag: Any,
    run_dag: Any,
    pipeline_settings: str,
    batch_client: Any,
    xcom: Any,
) -> None:
    # No step can start before F, the last one submitted, is in Batch.
    with capacity_held_until_submitted("batch-fanout-step-F"):
        dag_run = run_dag(project_dag("job_dependency_graph"), conf={"work_seconds": 0})
    assert dag_run.state == "success"

    ids = {name: xcom(dag_run, f"submit_{name}") for name in GRAPH}
    jobs = {job["jobId"]: job for job in batch_client.describe_jobs(jobs=list(ids.values()))["jobs"]}
    by_name = {name: jobs[job_id] for name, job_id in ids.items()}
    assert all(job["status"] == "SUCCEEDED" for job in by_name.values())
    # The whole graph was in Batch before its first job finished.
    assert max(job["createdAt"] for job in by_name.values()) <= by_name["A"]["stoppedAt"]
    for name, upstream in GRAPH.items():
        assert sorted(dep["jobId"] for dep in by_name[name].get("dependsOn", [])) == sorted(
            ids[step] for step in upstream
        )
        for step in upstream:
            assert by_name[name]["startedAt"] >= by_name[step]["stoppedAt"], (name, step)
    order = xcom(dag_run, "check_order")
    assert sorted(order) == sorted(GRAPH) and order[0] == "A" and order[-1] == "F"
