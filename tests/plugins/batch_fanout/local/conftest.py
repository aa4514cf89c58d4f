"""Fixtures for the local endpoint's tests: a real endpoint process, boto3 clients, and waiting helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import EndpointHandle, running_endpoint

CONTAINERS_DIR = Path(__file__).parent / "containers"
TEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
QUEUE = "batch-fanout-queue"
TERMINAL = ("SUCCEEDED", "FAILED")


@pytest.fixture(scope="session")
def containers_dir() -> Path:
    return CONTAINERS_DIR


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHandle]:
    """One endpoint per test module, with room for eight 1-vCPU jobs and a 2 s kill grace."""
    data_dir = tmp_path_factory.mktemp("local-batch")
    with running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, vcpus=8, kill_grace_seconds=2) as handle:
        yield handle


@pytest.fixture(scope="module")
def batch(endpoint: EndpointHandle) -> Any:
    return endpoint.client("batch")


@pytest.fixture(scope="module")
def logs(endpoint: EndpointHandle) -> Any:
    return endpoint.client("logs")


def register_test_definition(batch: Any, name: str = "testjob", **extra: Any) -> str:
    """Register the test job's definition; returns its ARN."""
    properties = {
        "image": TEST_IMAGE,
        "command": ["python", "testjob.py", "Ref::step"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
    }
    properties.update(extra.pop("containerProperties", {}))
    response = batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        parameters={"step": "print:hello"},
        containerProperties=properties,
        **extra,
    )
    return str(response["jobDefinitionArn"])


@pytest.fixture(scope="module")
def definition(batch: Any) -> str:
    return register_test_definition(batch)


@pytest.fixture(scope="module")
def submit(batch: Any, definition: str) -> Callable[..., str]:
    """Submit the test job with ``steps`` as its command; returns the job id."""

    def submit_job(*steps: str, name: str = "test", **extra: Any) -> str:
        overrides = dict(extra.pop("containerOverrides", {}))
        if steps:
            overrides["command"] = ["python", "testjob.py", *steps]
        response = batch.submit_job(
            jobName=name,
            jobQueue=extra.pop("jobQueue", QUEUE),
            jobDefinition=extra.pop("jobDefinition", definition),
            containerOverrides=overrides,
            **extra,
        )
        return str(response["jobId"])

    return submit_job


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def describe(batch: Any) -> Callable[[str], dict[str, Any]]:
    def describe_job(job_id: str) -> dict[str, Any]:
        jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
        assert len(jobs) == 1, f"DescribeJobs did not find {job_id}"
        return dict(jobs[0])

    return describe_job


@pytest.fixture(scope="module")
def wait_status(describe: Callable[[str], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Wait until a job reaches one of ``statuses`` (default: a terminal one); returns its description."""

    def wait(job_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 30.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = describe(job_id)
            return job if job["status"] in statuses else None

        return dict(wait_until(reached, timeout, f"job {job_id} to reach {statuses}"))

    return wait


@pytest.fixture(scope="module")
def read_log(logs: Any) -> Callable[[str], list[str]]:
    """The messages of a log stream, read with GetLogEvents from the head, following the tokens."""

    def read(stream: str) -> list[str]:
        messages: list[str] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": "/aws/batch/job",
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token:
                kwargs["nextToken"] = token
            response = logs.get_log_events(**kwargs)
            messages.extend(event["message"] for event in response["events"])
            if response["nextForwardToken"] == token or not response["events"]:
                return messages
            token = response["nextForwardToken"]

    return read


@pytest.fixture(scope="session")
def until() -> Callable[..., Any]:
    """``until(condition, timeout, what)``: poll a condition with a bounded deadline."""
    return wait_until
