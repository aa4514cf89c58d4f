"""Faults on demand: throttling, failed indices, Spot reclaims and lost capacity, persisted; and the
provider's throttling backoff tested against them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import EndpointHandle, start_endpoint

Submit = Callable[..., str]
WaitStatus = Callable[..., dict[str, Any]]
Until = Callable[..., Any]


@pytest.fixture
def faults(endpoint: EndpointHandle) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """Set faults for one test; cleared after it."""
    try:
        yield endpoint.faults
    finally:
        endpoint.faults({})


def test_throttling_for_a_count_answers_429_and_counts_down(
    endpoint: EndpointHandle, faults: Callable[[dict[str, Any]], dict[str, Any]], submit: Submit
) -> None:
    job_id = submit(name="throttled")
    faults({"throttle": {"DescribeJobs": {"count": 3}}})
    batch = endpoint.client("batch")  # 3 attempts per call (max_attempts 2 retries): all throttled
    with pytest.raises(ClientError) as raised:
        batch.describe_jobs(jobs=[job_id])
    assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobId"] == job_id
    assert endpoint.faults()["throttle"] == {"DescribeJobs": {"count": 0}}
    faults({"throttle": {"ListJobs": {"rate": 1.0}}})
    with pytest.raises(ClientError, match="TooManyRequestsException"):
        batch.list_jobs(jobQueue="batch-fanout-queue")
    assert batch.describe_jobs(jobs=[job_id])["jobs"]  # other operations are not throttled


def test_the_providers_backoff_rides_out_throttling_and_gives_up_after_its_retries(
    endpoint: EndpointHandle,
    faults: Callable[[dict[str, Any]], dict[str, Any]],
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from batch_fanout.hooks.batch_client import BatchFanoutClientHook

    # botocore's own retries off, so that every retry seen is the provider's.
    connection = endpoint.connection(config_kwargs={"retries": {"total_max_attempts": 1, "mode": "standard"}})
    monkeypatch.setenv("AIRFLOW_CONN_THROTTLED_LOCAL", json.dumps(connection))
    job_id = submit(name="backoff")
    hook = BatchFanoutClientHook(aws_conn_id="throttled_local", region_name="us-east-1", throttle_retries=3)
    pauses: list[float] = []
    hook.sleep = pauses.append
    faults({"throttle": {"DescribeJobs": {"count": 3}}})
    described = hook.call_with_backoff(hook.batch.describe_jobs, jobs=[job_id])
    assert described["jobs"][0]["jobId"] == job_id
    assert len(pauses) == 3
    assert all(0 <= pause <= hook.backoff_base * 2**retry for retry, pause in enumerate(pauses))

    faults({"throttle": {"DescribeJobs": {"count": 4}}})
    with pytest.raises(ClientError, match="TooManyRequestsException"):
        hook.call_with_backoff(hook.batch.describe_jobs, jobs=[job_id])
    assert len(pauses) == 6


def test_failures_on_given_indices_and_attempts_are_retried_by_the_retry_strategy(
    faults: Callable[[dict[str, Any]], dict[str, Any]], submit: Submit, wait_status: WaitStatus
) -> None:
    faults({"failures": [{"jobName": "flaky*", "indices": [1, 3], "attempts": [1], "exitCode": 3}]})
    parent = submit(name="flaky-array", arrayProperties={"size": 4}, retryStrategy={"attempts": 2})
    assert wait_status(parent)["status"] == "SUCCEEDED"
    children = [wait_status(f"{parent}:{index}") for index in range(4)]
    assert [len(child["attempts"]) for child in children] == [1, 2, 1, 2]
    assert children[1]["attempts"][0]["container"]["exitCode"] == 3
    assert children[1]["attempts"][1]["container"]["exitCode"] == 0


def test_a_spot_reclaim_fires_on_status_reason_rules(
    faults: Callable[[dict[str, Any]], dict[str, Any]], submit: Submit, wait_status: WaitStatus
) -> None:
    faults({"failures": [{"jobName": "spot", "attempts": [1], "reclaim": True}]})
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    job = wait_status(submit(name="spot", retryStrategy=strategy))
    assert job["status"] == "SUCCEEDED"
    first, second = job["attempts"]
    assert first["statusReason"].startswith("Host EC2 (instance i-")
    assert first["statusReason"].endswith(") terminated.")
    assert "exitCode" not in first["container"]
    assert second["container"]["exitCode"] == 0


def test_capacity_taken_away_holds_jobs_runnable_until_given_back(  # noqa: PLR0917 - pytest fixtures
    endpoint: EndpointHandle,
    faults: Callable[[dict[str, Any]], dict[str, Any]],
    submit: Submit,
    wait_status: WaitStatus,
    until: Until,
    tmp_path: Path,
) -> None:
    batch = endpoint.client("batch")
    faults({"capacity": {"batch-fanout-ce": 1}})
    release = tmp_path / "release"
    jobs = [submit(f"wait:{release}", name=f"capacity{index}") for index in range(3)]
    wait_status(jobs[0], ("RUNNING",))

    def states() -> list[str]:
        return [job["status"] for job in batch.describe_jobs(jobs=jobs)["jobs"]]

    until(lambda: states() == ["RUNNING", "RUNNABLE", "RUNNABLE"], what="one job on the one vCPU left")
    faults({})
    until(lambda: states() == ["RUNNING"] * 3, what="the capacity to come back")
    release.touch()
    for job_id in jobs:
        assert wait_status(job_id)["status"] == "SUCCEEDED"


def test_faults_are_checked_and_survive_a_restart(tmp_path: Path, containers_dir: Path) -> None:
    handle = start_endpoint(tmp_path / "data", containers_dir=containers_dir)
    try:
        with pytest.raises(RuntimeError, match=r"throttle\.DescribeJobs\.rate must be between 0 and 1"):
            handle.faults({"throttle": {"DescribeJobs": {"rate": 2}}})
        with pytest.raises(RuntimeError, match="unknown keys"):
            handle.faults({"throtle": {}})
        wanted = {"throttle": {"SubmitJob": {"count": 5}}, "failures": [], "capacity": {"batch-fanout-ce": 0}}
        assert handle.faults(wanted) == wanted
    finally:
        handle.stop()
    restarted = start_endpoint(tmp_path / "data", containers_dir=containers_dir)
    try:
        assert restarted.faults() == wanted
    finally:
        restarted.stop()
