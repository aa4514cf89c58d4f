"""``job_dependency_graph``: six jobs submitted at once, run in the order their dependencies allow."""

from __future__ import annotations

from typing import Any

import pytest

GRAPH = {"A": [], "B": ["A"], "C": ["A"], "D": ["A", "B"], "E": ["C"], "F": ["D", "E"]}


@pytest.mark.slow
def test_six_jobs_are_submitted_at_once_and_batch_keeps_their_order(run_all_at_once: Any, xcom: Any) -> None:
    # No step can start before F, the last one submitted, is in Batch; the whole graph is in Batch
    # before A, its first job, finishes.
    dag_run, by_name = run_all_at_once(
        "job_dependency_graph", {"work_seconds": 0}, stages=list(GRAPH), last_job="batch-fanout-step-F"
    )

    assert all(job["status"] == "SUCCEEDED" for job in by_name.values())
    for name, upstream in GRAPH.items():
        assert sorted(dep["jobId"] for dep in by_name[name].get("dependsOn", [])) == sorted(
            by_name[step]["jobId"] for step in upstream
        )
        for step in upstream:
            assert by_name[name]["startedAt"] >= by_name[step]["stoppedAt"], (name, step)
    order = xcom(dag_run, "check_order")
    assert sorted(order) == sorted(GRAPH) and order[0] == "A" and order[-1] == "F"
