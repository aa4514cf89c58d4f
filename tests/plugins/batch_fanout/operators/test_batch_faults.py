"""The local endpoint's faults in real DAG runs: a Spot reclaim of a running array child, which Batch
retries by its ``retryStrategy`` while the operator ends green with the reclaimed attempt there to
see; and throttled SubmitJob and DescribeJobs, which the operator's backoff rides out."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from batch_fanout.ui.array import CountingClient, child_details

from .conftest import NO_DELAY_RETRY, array_dag

RECLAIM_RETRIED = {
    "attempts": 2,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_reclaimed_running_child_is_retried_by_batch_and_the_task_succeeds(
    *,
    run_dag: Any,
    probe_endpoint: Any,
    probe_connection: str,
    probe: Any,
    probe_batch: Any,
    helpers: Any,
    deferrable: bool,
) -> None:
    dag_id = f"bf_spot_reclaim_{'deferred' if deferrable else 'sync'}"
    hold = probe.record_dir / "hold"
    reclaimed: list[str] = []

    def reclaim_child_1_once_running() -> bool:
        # Once the probe has recorded its run, it is at work (and holding), not starting up.
        if not (probe.record_dir / "1.1").exists():
            return False
        [job] = helpers.jobs_of_task(probe_batch, "spot-arr", dag_id, "arr")
        child = f"{job['jobId']}:1"
        reclaimed.extend(probe_endpoint.reclaim(child))
        return True

    # Every child holds until child 1 has been reclaimed while it ran; then all are released.
    watcher = helpers.release_when(reclaim_child_1_once_running, hold)
    dag = array_dag(
        dag_id,
        job_name="spot-arr",
        array_size=3,
        container_overrides=probe.overrides(hold_file=hold),
        retry_strategy=RECLAIM_RETRIED,
        deferrable=deferrable,
    )

    dag_run = run_dag(dag)
    watcher.join(timeout=60)

    [job] = helpers.jobs_of_task(probe_batch, "spot-arr", dag_id, "arr")
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


@pytest.fixture
def unretried_connection(probe_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``aws_default`` to the endpoint with botocore's own retries off, so that every throttled answer
    reaches the provider's backoff; the endpoint's faults are cleared after the test."""
    connection = probe_endpoint.connection(
        config_kwargs={"retries": {"total_max_attempts": 1, "mode": "standard"}}
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    try:
        yield "aws_default"
    finally:
        probe_endpoint.faults({})


def test_throttled_submit_and_describe_are_ridden_out_by_the_operators_backoff(
    *,
    run_dag: Any,
    probe_endpoint: Any,
    unretried_connection: str,
    probe: Any,
    probe_batch: Any,
    helpers: Any,
    capfd: Any,
) -> None:
    dag = array_dag(
        "bf_throttled", job_name="throttled-arr", array_size=2, container_overrides=probe.overrides()
    )
    probe_endpoint.faults({"throttle": {"SubmitJob": {"count": 2}, "DescribeJobs": {"count": 3}}})

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert dag_run.get_task_instance("arr").try_number == 1
    jobs = helpers.jobs_of_task(probe_batch, "throttled-arr", "bf_throttled", "arr")
    assert len(jobs) == 1  # a throttled SubmitJob was retried, never submitted twice
    assert jobs[0]["status"] == "SUCCEEDED"
    assert probe.runs() == {0: 1, 1: 1}
    # Every throttled answer was spent, each on one of the provider's retries.
    assert probe_endpoint.faults()["throttle"] == {"SubmitJob": {"count": 0}, "DescribeJobs": {"count": 0}}
    out = capfd.readouterr().out
    assert out.count("AWS throttled submit_job (TooManyRequestsException)") == 2
    assert out.count("AWS throttled describe_jobs (TooManyRequestsException)") == 3


def test_an_injected_failure_of_one_index_is_retried_alone_by_the_next_try(
    *,
    run_dag: Any,
    probe_endpoint: Any,
    probe_connection: str,
    probe: Any,
    probe_batch: Any,
    helpers: Any,
    capfd: Any,
) -> None:
    """The endpoint fails child 2 of the first array with exit code 5 (it never runs); the task fails,
    and its Airflow retry submits only logical index 2, which runs and succeeds."""
    probe_endpoint.faults(
        {"failures": [{"jobName": "faulty-arr", "indices": [2], "attempts": [1], "exitCode": 5}]}
    )
    try:
        dag = array_dag(
            "bf_injected_failure",
            job_name="faulty-arr",
            array_size=4,
            container_overrides=probe.overrides(),
            **NO_DELAY_RETRY,
        )

        dag_run = run_dag(dag)
    finally:
        probe_endpoint.faults({})

    assert dag_run.state == "success"
    assert dag_run.get_task_instance("arr").try_number == 2
    first, retried = helpers.jobs_of_task(probe_batch, "faulty-arr", "bf_injected_failure", "arr")
    assert first["status"] == "FAILED"
    failed_child = probe_batch.describe_jobs(jobs=[f"{first['jobId']}:2"])["jobs"][0]
    assert failed_child["container"]["exitCode"] == 5
    assert retried["status"] == "SUCCEEDED" and not retried.get("arrayProperties")
    # Index 2 did not run in the first array (the endpoint failed it instead); it ran once on retry.
    assert probe.runs() == {0: 1, 1: 1, 2: 1, 3: 1}
    assert sorted(probe.outputs()) == [0, 1, 2, 3]
    out = capfd.readouterr().out
    assert "submitting only logical indices 2" in out
    # The failed child's log, copied into the task log, says that a fault failed it.
    assert "the faults document failed this attempt (exit code 5); its command did not run" in out
