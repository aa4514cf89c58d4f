"""Compute environments, job queues, capacity, memory limits, images and the logs API.

These tests use their own endpoint with 2 vCPUs and a small log cap, so that capacity is easy to fill.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import EndpointHandle, running_endpoint

QUEUE = "batch-fanout-queue"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
LOG_CAP = 2000
WaitStatus = Callable[..., dict[str, Any]]
Until = Callable[..., Any]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, containers_dir: Path) -> Iterator[EndpointHandle]:
    data_dir = tmp_path_factory.mktemp("local-batch-small")
    with running_endpoint(
        data_dir, containers_dir=containers_dir, vcpus=2, kill_grace_seconds=2, max_log_bytes=LOG_CAP
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def definition(batch: Any) -> str:
    return str(
        batch.register_job_definition(
            jobDefinitionName="small",
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": ["python", "testjob.py", "print:hello"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            },
        )["jobDefinitionArn"]
    )


def test_vcpus_bound_how_many_jobs_run_and_the_rest_wait_runnable(
    batch: Any, submit: Callable[..., str], wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    jobs = [submit(f"wait:{release}") for _ in range(3)]
    wait_status(jobs[0], ("RUNNING",))
    wait_status(jobs[1], ("RUNNING",))
    assert wait_status(jobs[2], ("RUNNABLE",))["status"] == "RUNNABLE"
    big = submit("print:big", containerOverrides={"resourceRequirements": [{"type": "VCPU", "value": "2"}]})
    assert wait_status(big, ("RUNNABLE",))["status"] == "RUNNABLE"
    release.touch()
    for job_id in [*jobs, big]:
        assert wait_status(job_id)["status"] == "SUCCEEDED"
    third = wait_status(jobs[2])
    first_two_end = min(wait_status(job_id)["stoppedAt"] for job_id in jobs[:2])
    assert third["startedAt"] >= first_two_end


def test_queue_priority_and_compute_environment_life_cycle(
    batch: Any, submit: Callable[..., str], wait_status: WaitStatus, tmp_path: Path
) -> None:
    environment = batch.create_compute_environment(
        computeEnvironmentName="one-cpu",
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 1, "subnets": [], "instanceRole": "x"},
    )
    assert environment["computeEnvironmentArn"].endswith(":compute-environment/one-cpu")
    for name, priority in (("low", 1), ("high", 10)):
        batch.create_job_queue(
            jobQueueName=name,
            priority=priority,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "one-cpu"}],
        )
    queues = {queue["jobQueueName"]: queue for queue in batch.describe_job_queues()["jobQueues"]}
    assert queues["high"]["priority"] == 10
    assert (
        queues["high"]["computeEnvironmentOrder"][0]["computeEnvironment"]
        == environment["computeEnvironmentArn"]
    )

    release = tmp_path / "release"
    blocker = submit(f"wait:{release}", jobQueue="low")
    wait_status(blocker, ("RUNNING",))
    low = submit("print:low", jobQueue="low")
    high = submit("print:high", jobQueue="high")
    wait_status(high, ("RUNNABLE",))
    release.touch()
    low_job, high_job = wait_status(low), wait_status(high)
    assert high_job["startedAt"] <= low_job["startedAt"]
    variables_job = wait_status(submit("env", jobQueue="high"))
    assert variables_job["status"] == "SUCCEEDED"

    with pytest.raises(ClientError, match="disable it first"):
        batch.delete_job_queue(jobQueue="high")
    batch.update_job_queue(jobQueue="high", state="DISABLED")
    with pytest.raises(ClientError, match="DISABLED"):
        submit("print:x", jobQueue="high")
    batch.delete_job_queue(jobQueue="high")
    with pytest.raises(ClientError, match="disable it first"):
        batch.delete_compute_environment(computeEnvironment="one-cpu")
    batch.update_compute_environment(computeEnvironment="one-cpu", state="DISABLED")
    with pytest.raises(ClientError, match="job queue low uses it"):
        batch.delete_compute_environment(computeEnvironment="one-cpu")
    batch.update_job_queue(jobQueue="low", state="DISABLED")
    batch.delete_job_queue(jobQueue="low")
    batch.delete_compute_environment(computeEnvironment="one-cpu")
    names = [
        item["computeEnvironmentName"]
        for item in batch.describe_compute_environments()["computeEnvironments"]
    ]
    assert names == ["batch-fanout-ce"]
    default = batch.describe_compute_environments(computeEnvironments=["batch-fanout-ce"])[
        "computeEnvironments"
    ][0]
    assert default["computeResources"]["maxvCpus"] == 2
    assert default["state"] == "ENABLED"


def test_a_job_over_its_memory_is_killed_as_out_of_memory(
    submit: Callable[..., str], wait_status: WaitStatus
) -> None:
    job = wait_status(
        submit(
            "allocate:400",
            "spin",
            containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "64"}]},
            retryStrategy={"attempts": 2, "evaluateOnExit": [{"onReason": "OutOfMemory*", "action": "EXIT"}]},
        )
    )
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert job["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert job["attempts"][0]["container"]["exitCode"] == 137
    assert len(job["attempts"]) == 1  # the onReason rule said EXIT


def test_unknown_image_fails_naming_it_and_the_image_map_resolves_others(
    batch: Any, endpoint: EndpointHandle, wait_status: WaitStatus, containers_dir: Path
) -> None:
    def run(image: str) -> dict[str, Any]:
        arn = batch.register_job_definition(
            jobDefinitionName="image-test",
            type="container",
            containerProperties={"image": image, "command": ["python", "testjob.py", "print:mapped"]},
        )["jobDefinitionArn"]
        return wait_status(batch.submit_job(jobName="image", jobQueue=QUEUE, jobDefinition=arn)["jobId"])

    missing = run("registry.example/team/not-there:1.0")
    assert missing["status"] == "FAILED"
    assert "registry.example/team/not-there:1.0" in missing["statusReason"]
    assert missing["statusReason"].startswith("CannotPullContainerError")

    (endpoint.data_dir / "images.json").write_text(
        json.dumps({"python:3.11-slim": str(containers_dir / "testjob")})
    )
    assert run("python:3.11-slim")["status"] == "SUCCEEDED"


def test_a_command_that_does_not_exist_fails_to_start(batch: Any, wait_status: WaitStatus) -> None:
    arn = batch.register_job_definition(
        jobDefinitionName="no-command",
        type="container",
        containerProperties={"image": IMAGE, "command": ["no-such-program-anywhere"]},
    )["jobDefinitionArn"]
    job = wait_status(batch.submit_job(jobName="nocmd", jobQueue=QUEUE, jobDefinition=arn)["jobId"])
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("CannotStartContainerError")
    assert "no-such-program-anywhere" in job["statusReason"]


def test_logs_calls_read_streams_and_a_long_stream_is_cut(
    batch: Any,
    logs: Any,
    submit: Callable[..., str],
    wait_status: WaitStatus,
    read_log: Callable[[str], list[str]],
) -> None:
    job = wait_status(submit(*[f"print:line {index}" for index in range(5)]))
    stream = job["container"]["logStreamName"]
    first = logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True, limit=2
    )
    assert [event["message"] for event in first["events"]] == ["line 0", "line 1"]
    following = logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, nextToken=first["nextForwardToken"], limit=10
    )
    assert [event["message"] for event in following["events"]] == ["line 2", "line 3", "line 4"]
    tail = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, limit=1)
    assert [event["message"] for event in tail["events"]] == ["line 4"]
    assert all(job["startedAt"] <= event["timestamp"] for event in first["events"])

    filtered = logs.filter_log_events(
        logGroupName="/aws/batch/job", logStreamNames=[stream], filterPattern="3"
    )
    assert [event["message"] for event in filtered["events"]] == ["line 3"]
    described = logs.describe_log_streams(logGroupName="/aws/batch/job", logStreamNamePrefix="small/default/")
    assert stream in [item["logStreamName"] for item in described["logStreams"]]

    with pytest.raises(ClientError) as raised:
        logs.get_log_events(logGroupName="/aws/batch/job", logStreamName="small/default/" + "0" * 32)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as raised:
        logs.get_log_events(logGroupName="/other", logStreamName=stream)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    long_job = wait_status(submit("lines:100:100"))
    messages = read_log(long_job["container"]["logStreamName"])
    assert long_job["status"] == "SUCCEEDED"
    assert len(messages) < 100
    assert sum(len(message) for message in messages[:-1]) <= LOG_CAP
    assert "cut at 2000 bytes" in messages[-1]
