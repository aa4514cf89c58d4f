"""``RunFailureNotifier``: a failed task leaves a record in the run's results folder."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest


@pytest.mark.slow
def test_a_failed_task_is_recorded_in_the_runs_results(run_dag: Any, results_uri: str) -> None:
    from airflow.sdk import dag, task

    from batch_fanout.notifications.failure import RunFailureNotifier

    @dag(
        dag_id="notifier_probe",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        default_args={
            "retries": 0,
            "on_failure_callback": [
                RunFailureNotifier(results_uri="{{ var.value.batch_fanout_results_uri }}")
            ],
        },
    )
    def notifier_probe() -> None:
        @task
        def fine() -> int:
            return 1

        @task
        def breaks(value: int) -> None:
            raise ValueError(f"the input {value} is not what this task wanted")

        breaks(fine())  # type: ignore[arg-type]  # an XComArg stands for the int at run time

    dag_run = run_dag(notifier_probe())
    assert dag_run.state == "failed"

    failures = Path(urlparse(results_uri).path) / "notifier_probe" / dag_run.run_id / "_failures"
    assert [path.name for path in failures.iterdir()] == ["breaks.json"]
    record = json.loads((failures / "breaks.json").read_text())
    assert record["task_id"] == "breaks"
    assert record["run_id"] == dag_run.run_id
    assert record["try_number"] == 1
    assert "the input 1 is not what this task wanted" in record["error"]
