"""Fixtures for the local endpoint's tests: a real endpoint process, boto3 clients, and waiting helpers."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import EndpointHandle, running_endpoint, wait_for

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


def endpoint_in(data_dir: Path, **options: Any) -> contextlib.AbstractContextManager[EndpointHandle]:
    """A test's own endpoint on ``data_dir``, running the test job's images with a 2 s kill grace (unless
    ``options`` say otherwise), stopped on exit: for tests that kill, stop or restart an endpoint
    (started again on the same ``data_dir``, it is restarted)."""
    return running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, **{"kill_grace_seconds": 2, **options})


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


def create_queue(batch: Any, name: str, vcpus: int, **extra: Any) -> str:
    """A job queue of its own managed EC2 compute environment of ``vcpus`` vCPUs; returns its name."""
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": vcpus, "subnets": []},
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName=name,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        **extra,
    )
    return name


def job_statuses(batch: Any, *job_ids: str) -> dict[str, str]:
    """Each job's status by id, from one DescribeJobs call (for a test's own endpoint, which the
    module's ``describe`` fixture does not reach)."""
    return {job["jobId"]: job["status"] for job in batch.describe_jobs(jobs=list(job_ids))["jobs"]}


def attempt_journal(data_dir: Path) -> dict[str, dict[str, Any]]:
    """What the supervisors recorded, by attempt (the journals' documented format)."""
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted((data_dir / "logs").glob("journal-*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            entries.setdefault(entry.pop("attempt"), {}).update(entry)
    return entries


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something true; fail the test after ``timeout`` seconds."""
    return wait_for(condition, timeout, what, interval=0.02)


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


def log_messages(logs: Any, stream: str) -> list[str]:
    """The messages of a log stream, read with GetLogEvents from the head, following the tokens."""
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


@pytest.fixture(scope="module")
def read_log(logs: Any) -> Callable[[str], list[str]]:
    """The messages of a log stream of the module's endpoint (see ``log_messages``)."""
    return functools.partial(log_messages, logs)


@pytest.fixture(scope="session")
def statuses() -> Callable[..., dict[str, str]]:
    """``statuses(batch, *job_ids)``: each job's status by id (see ``job_statuses``)."""
    return job_statuses


def wait_held_then_released(batch: Any, holder: str, waiting: str, release: Path, held: str) -> None:
    """While ``holder`` runs, ``waiting`` waits RUNNABLE for what ``holder`` holds (``held`` names it in a
    failure); once ``release`` (which ``holder`` waits for) is touched, both succeed."""
    wait_until(
        lambda: job_statuses(batch, holder, waiting) == {holder: "RUNNING", waiting: "RUNNABLE"}, what=held
    )
    release.touch()
    wait_until(
        lambda: job_statuses(batch, holder, waiting) == dict.fromkeys((holder, waiting), "SUCCEEDED"),
        what="both jobs to succeed",
    )


@pytest.fixture(scope="session")
def held_then_released() -> Callable[..., None]:
    """``held_then_released(batch, holder, waiting, release, held)``: see ``wait_held_then_released``."""
    return wait_held_then_released


@pytest.fixture(scope="session")
def until() -> Callable[..., Any]:
    """``until(condition, timeout, what)``: poll a condition with a bounded deadline."""
    return wait_until
