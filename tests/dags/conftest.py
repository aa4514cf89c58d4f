"""Fixtures of the DAG tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest


@pytest.fixture
def run_all_at_once(
    *,
    capacity_held_until_submitted: Any,
    project_dag: Any,
    run_dag: Any,
    pipeline_settings: str,
    batch_client: Any,
    xcom: Any,
) -> Callable[..., tuple[Any, dict[str, dict[str, Any]]]]:
    """``run_all_at_once(dag_id, conf, stages=..., last_job=...)``: run a DAG of the project that
    submits every job at once, with no job able to start until ``last_job`` (a job name) is in Batch;
    check that the run succeeded and that every stage's job was in Batch before the first stage's job
    finished. Returns the DAG run and each stage's job (as DescribeJobs gives it) by stage name."""

    def run(
        dag_id: str, conf: Mapping[str, Any], *, stages: Sequence[str], last_job: str
    ) -> tuple[Any, dict[str, dict[str, Any]]]:
        with capacity_held_until_submitted(last_job):
            dag_run = run_dag(project_dag(dag_id), conf=dict(conf))
        assert dag_run.state == "success"
        ids = {stage: xcom(dag_run, f"submit_{stage}") for stage in stages}
        described = batch_client.describe_jobs(jobs=list(ids.values()))["jobs"]
        by_id = {job["jobId"]: job for job in described}
        jobs = {stage: by_id[job_id] for stage, job_id in ids.items()}
        first = jobs[stages[0]]
        # Batch, not Airflow, gated the stages: all of them were submitted before the first ended.
        assert all(job["createdAt"] <= first["stoppedAt"] for job in jobs.values())
        return dag_run, jobs

    return run
