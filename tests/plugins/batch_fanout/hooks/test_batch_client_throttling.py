"""BatchFanoutClientHook against the local endpoint's faults: its throttling backoff and retry budget
on real ``TooManyRequestsException`` answers (HTTP 429) over HTTP, with botocore's own retries off so
that every retry seen is the hook's, and the failed-children lookup that retries of arrays rely on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, is_throttling_error

CONN_ID = "throttled_local"
QUEUE = "batch-fanout-queue"


@pytest.fixture
def faults(probe_endpoint: Any) -> Iterator[Callable[..., dict[str, Any]]]:
    """Set the shared endpoint's faults for one test; cleared after it."""
    try:
        yield probe_endpoint.faults
    finally:
        probe_endpoint.faults({})


@pytest.fixture
def hook(probe_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> BatchFanoutClientHook:
    """The hook on a connection to the endpoint whose botocore retries are off; pauses recorded."""
    connection = probe_endpoint.connection(
        config_kwargs={"retries": {"total_max_attempts": 1, "mode": "standard"}}
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    built = BatchFanoutClientHook(
        aws_conn_id=CONN_ID, region_name="us-east-1", backoff_base=0.5, backoff_cap=4
    )
    built.pauses = []  # type: ignore[attr-defined]
    built.sleep = built.pauses.append  # type: ignore[attr-defined]
    return built


@pytest.fixture
def held_job(probe_batch: Any, probe: Any) -> Iterator[str]:
    """A probe job that holds (runs) until the test ends."""
    hold = probe.record_dir / "hold"
    submitted = probe_batch.submit_job(
        jobName="throttle-target",
        jobQueue=QUEUE,
        jobDefinition="fanout-probe",
        containerOverrides=probe.overrides(hold_file=hold),
    )
    try:
        yield str(submitted["jobId"])
    finally:
        hold.parent.mkdir(parents=True, exist_ok=True)
        hold.touch()


def test_throttled_describe_backs_off_with_growing_jitter_and_succeeds(
    hook: BatchFanoutClientHook, faults: Callable[..., dict[str, Any]], held_job: str
) -> None:
    faults({"throttle": {"DescribeJobs": {"count": 3}}})

    state = hook.job_state(held_job)

    assert state.job_id == held_job
    assert state.status in {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"}
    pauses = hook.pauses  # type: ignore[attr-defined]
    assert len(pauses) == 3
    # Full jitter: pause n is uniform in [0, base * 2**(n-1)], capped.
    for retry, pause in enumerate(pauses, start=1):
        assert 0 <= pause <= min(4, 0.5 * 2 ** (retry - 1))
    # The three throttled answers were all spent on the hook's retries, none on botocore's.
    assert faults()["throttle"] == {"DescribeJobs": {"count": 0}}


def test_throttling_beyond_the_retry_budget_raises_and_changes_nothing(
    hook: BatchFanoutClientHook,
    faults: Callable[..., dict[str, Any]],
    held_job: str,
    probe_batch: Any,
    helpers: Any,
) -> None:
    hook.throttle_retries = 2
    faults({"throttle": {"TerminateJob": {"count": 3}}})

    with pytest.raises(ClientError) as raised:
        hook.terminate(held_job, "stop")

    assert raised.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert is_throttling_error(raised.value)
    assert len(hook.pauses) == 2  # type: ignore[attr-defined]
    assert not probe_batch.describe_jobs(jobs=[held_job])["jobs"][0]["isTerminated"]
    # The budget was spent exactly: the next call goes through and terminates the job.
    hook.terminate(held_job, "stop")

    def terminated() -> dict[str, Any] | None:
        job = probe_batch.describe_jobs(jobs=[held_job])["jobs"][0]
        return job if job["status"] == "FAILED" else None

    job = helpers.wait_for(terminated, 60, "the terminated job to fail")
    assert job["isTerminated"] and job["statusReason"] == "stop"
    assert len(hook.pauses) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", ["ThrottlingException", "RequestLimitExceeded", "SlowDown"])
def test_other_services_throttling_codes_are_throttling_too(code: str) -> None:
    """Codes other AWS services use (the endpoint answers Batch's only, so no call is made here)."""
    assert is_throttling_error(ClientError({"Error": {"Code": code}}, "Op"))
    assert not is_throttling_error(ClientError({"Error": {"Code": "ClientException"}}, "Op"))


def test_other_errors_are_not_retried(hook: BatchFanoutClientHook) -> None:
    with pytest.raises(ClientError, match="no-such-queue") as raised:
        hook.submit({"jobName": "x", "jobQueue": "no-such-queue", "jobDefinition": "fanout-probe"})
    assert raised.value.response["Error"]["Code"] == "ClientException"
    assert hook.pauses == []  # type: ignore[attr-defined]


def test_async_state_backs_off_on_throttling_with_the_same_loop(
    hook: BatchFanoutClientHook, faults: Callable[..., dict[str, Any]], held_job: str
) -> None:
    faults({"throttle": {"DescribeJobs": {"count": 2}}})

    state = asyncio.run(hook.a_job_state(held_job))

    assert state.job_id == held_job and state.job_name == "throttle-target"
    # The pauses went through the hook's one backoff loop (run in a worker thread).
    assert len(hook.pauses) == 2  # type: ignore[attr-defined]


def test_failed_children_of_an_array_failed_by_faults_come_in_index_order_with_their_reasons(
    hook: BatchFanoutClientHook,
    faults: Callable[..., dict[str, Any]],
    probe_batch: Any,
    probe: Any,
    helpers: Any,
) -> None:
    """What the operator's retry of failed children reads: children 7 and 2 failed by the endpoint
    (an exit code, a Spot reclaim), listed under a throttled ListJobs, described in index order."""
    faults(
        {
            "throttle": {"ListJobs": {"count": 1}},
            "failures": [
                {"jobName": "failing-children", "indices": [7], "exitCode": 3},
                {"jobName": "failing-children", "indices": [2], "reclaim": True},
            ],
        }
    )
    parent = probe_batch.submit_job(
        jobName="failing-children",
        jobQueue=QUEUE,
        jobDefinition="fanout-probe",
        arrayProperties={"size": 8},
        containerOverrides=probe.overrides(),
    )["jobId"]

    def finished() -> bool:
        return probe_batch.describe_jobs(jobs=[parent])["jobs"][0]["status"] == "FAILED"

    helpers.wait_for(finished, 60, "the array to fail")

    children = hook.failed_children(parent)

    assert [(child.array_index, child.exit_code) for child in children] == [(2, None), (7, 3)]
    assert children[0].status_reason.startswith("Host EC2 (instance i-")
    assert children[1].status_reason == "Essential container in task exited"
    assert all(
        child.log_stream and child.log_stream.startswith("fanout-probe/default/") for child in children
    )
    assert hook.failed_child_indices(parent) == [2, 7]
    assert len(hook.pauses) == 1  # type: ignore[attr-defined]  # the one throttled ListJobs
