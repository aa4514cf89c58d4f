"""A Spot reclaim of a running array child, in a real DAG run: Batch retries it by its
``retryStrategy`` and the operator ends green, with the reclaimed attempt there to see."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from airflow.sdk import DAG

from batch_fanout.operators.batch import BatchFanoutOperator
from batch_fanout.ui.array import CountingClient, child_details

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
RECLAIM_RETRIED = {
    "attempts": 2,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}


def test_a_reclaimed_running_child_is_retried_by_batch_and_the_task_succeeds(  # noqa: PLR0917 - fixtures
    run_dag: Any, probe_endpoint: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    hold = probe.record_dir / "hold"
    reclaimed: list[str] = []

    def reclaim_child_1_once_running() -> bool:
        # Once the probe has recorded its run, it is at work (and holding), not starting up.
        if not (probe.record_dir / "1.1").exists():
            return False
        [job] = helpers.jobs_of_task(probe_batch, "spot-arr", "bf_spot_reclaim", "arr")
        child = f"{job['jobId']}:1"
        reclaimed.extend(probe_endpoint.reclaim(child))
        return True

    # Every child holds until child 1 has been reclaimed while it ran; then all are released.
    watcher = helpers.release_when(reclaim_child_1_once_running, hold)
    with DAG("bf_spot_reclaim", schedule=None, start_date=START) as dag:
        BatchFanoutOperator(
            task_id="arr",
            job_name="spot-arr",
            array_size=3,
            job_definition="fanout-probe",
            job_queue="batch-fanout-queue",
            poll_interval=0.2,
            container_overrides=probe.overrides(hold_file=hold),
            retry_strategy=RECLAIM_RETRIED,
        )

    dag_run = run_dag(dag)
    watcher.join(timeout=60)

    [job] = helpers.jobs_of_task(probe_batch, "spot-arr", "bf_spot_reclaim", "arr")
    assert reclaimed == [f"{job['jobId']}:1"]
    assert dag_run.state == "success"
    assert dag_run.get_task_instance("arr").try_number == 1  # Batch retried the child, not Airflow
    assert job["status"] == "SUCCEEDED"
    assert probe.runs() == {0: 1, 1: 2, 2: 1}
    assert sorted(probe.outputs()) == [0, 1, 2]
    # The array view of the task shows the reclaimed attempt and the one that succeeded after it.
    calls: Counter[str] = Counter()
    details = child_details(
        CountingClient(probe_batch, calls),
        CountingClient(probe_endpoint.client("logs"), calls),
        f"{job['jobId']}:1",
    )
    lost, retried = details["attempts"]
    assert lost["reason"].startswith("Host EC2 (instance i-") and lost["reason"].endswith(") terminated.")
    assert lost["exit_code"] is None
    assert retried["exit_code"] == 0
    assert details["status"] == "SUCCEEDED"
