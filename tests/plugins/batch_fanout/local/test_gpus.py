"""GPU resource requirements: AWS's validation, GPUs counted as capacity, distinct ids per job in
``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``, freed at the end, held across a restart; and how
the endpoint finds the machine's GPUs.

There is no GPU on this machine: the endpoints here are given theirs with the ``gpus`` option
(``--gpus``), which is what a user without a driver listing does too. Jobs are real processes that
print the variables they were given.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.gpus import detect_gpus, parse_nvidia_smi_listing
from batch_fanout.local.testing import EndpointHandle, running_endpoint, start_endpoint

from .conftest import register_test_definition

QUEUE = "batch-fanout-queue"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
WaitStatus = Callable[..., dict[str, Any]]
Until = Callable[..., Any]
ReadLog = Callable[[str], list[str]]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, containers_dir: Path) -> Iterator[EndpointHandle]:
    data_dir = tmp_path_factory.mktemp("local-batch-gpus")
    with running_endpoint(
        data_dir, containers_dir=containers_dir, vcpus=8, kill_grace_seconds=2, gpus=2
    ) as handle:
        yield handle


def _gpu_definition(batch: Any, name: str = "gpu-job", gpus: str = "1") -> str:
    return register_test_definition(
        batch,
        name,
        containerProperties={
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "128"},
                {"type": "GPU", "value": gpus},
            ]
        },
    )


def _submit(batch: Any, definition: str, *steps: str, queue: str = QUEUE, **overrides: Any) -> str:
    return str(
        batch.submit_job(
            jobName="gpu",
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides={"command": ["python", "testjob.py", *steps], **overrides},
        )["jobId"]
    )


def _variables(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if "=" in line)


PRINT_GPUS = ("print-env:CUDA_VISIBLE_DEVICES", "print-env:NVIDIA_VISIBLE_DEVICES")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("1.5", "containerProperties"),
        ("0", "containerProperties"),
        ("two", "containerProperties"),
        ("²", "containerProperties"),
    ],
)
def test_a_gpu_requirement_must_be_a_whole_number_of_gpus(batch: Any, value: str, where: str) -> None:
    with pytest.raises(ClientError) as raised:
        _gpu_definition(batch, "bad-gpus", value)
    assert raised.value.response["Error"]["Code"] == "ClientException"
    message = raised.value.response["Error"]["Message"]
    assert f"Invalid GPU value {value!r} in {where}.resourceRequirements" in message
    definition = _gpu_definition(batch, "good-gpus", "1")
    with pytest.raises(ClientError, match=r"Invalid GPU value '0.5' in containerOverrides"):
        _submit(batch, definition, "print:x", resourceRequirements=[{"type": "GPU", "value": "0.5"}])


def test_gpus_are_refused_on_fargate(batch: Any) -> None:
    with pytest.raises(ClientError, match="GPUs aren't available for jobs that run on Fargate resources"):
        batch.register_job_definition(
            jobDefinitionName="fargate-gpu",
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties={
                "image": IMAGE,
                "command": ["python", "testjob.py"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "2048"},
                    {"type": "GPU", "value": "1"},
                ],
            },
        )


def test_each_job_gets_distinct_gpus_and_a_third_waits_until_one_is_freed(
    endpoint: EndpointHandle, batch: Any, wait_status: WaitStatus, read_log: ReadLog, tmp_path: Path
) -> None:
    definition = _gpu_definition(batch)
    release = tmp_path / "release"
    first, second = (_submit(batch, definition, *PRINT_GPUS, f"wait:{release}") for _ in range(2))
    wait_status(first, ("RUNNING",))
    wait_status(second, ("RUNNING",))
    third = _submit(batch, definition, *PRINT_GPUS)
    # vCPUs and memory are plenty: the GPUs alone hold it back.
    assert wait_status(third, ("RUNNABLE",))["status"] == "RUNNABLE"
    status = endpoint.status()
    assert status is not None and status["gpus"] == {"count": 2, "inUse": [0, 1]}
    shown = subprocess.run(
        [sys.executable, "-m", "batch_fanout.cli", "local", "status", "--data-dir", str(endpoint.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "GPUs       2 of 2 in use" in shown.stdout.splitlines()
    # An override of another type merges by type: the definition's GPU requirement stays.
    vcpu_override = _submit(
        batch, definition, *PRINT_GPUS, resourceRequirements=[{"type": "VCPU", "value": "1"}]
    )
    release.touch()
    done = {job_id: wait_status(job_id) for job_id in (first, second, third)}
    assert {job["status"] for job in done.values()} == {"SUCCEEDED"}
    given = {job_id: _variables(read_log(job["container"]["logStreamName"])) for job_id, job in done.items()}
    for variables in given.values():
        assert variables["NVIDIA_VISIBLE_DEVICES"] == variables["CUDA_VISIBLE_DEVICES"]
    assert {given[first]["CUDA_VISIBLE_DEVICES"], given[second]["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
    assert given[third]["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    assert done[third]["startedAt"] >= min(done[first]["stoppedAt"], done[second]["stoppedAt"])
    assert done[third]["container"]["resourceRequirements"][-1] == {"type": "GPU", "value": "1"}
    merged = wait_status(vcpu_override)
    assert merged["status"] == "SUCCEEDED"
    assert {"type": "GPU", "value": "1"} in merged["container"]["resourceRequirements"]
    status = endpoint.status()  # every GPU job has ended: every id is free again
    assert status is not None and status["gpus"] == {"count": 2, "inUse": []}


def test_a_job_without_a_gpu_requirement_sees_no_gpu_and_a_two_gpu_job_gets_both(
    batch: Any, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    plain = str(
        batch.register_job_definition(
            jobDefinitionName="cpu-only",
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": ["python", "testjob.py", *PRINT_GPUS],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
            },
        )["jobDefinitionArn"]
    )
    job = wait_status(batch.submit_job(jobName="cpu", jobQueue=QUEUE, jobDefinition=plain)["jobId"])
    assert _variables(read_log(job["container"]["logStreamName"])) == {
        "CUDA_VISIBLE_DEVICES": "",
        "NVIDIA_VISIBLE_DEVICES": "",
    }
    both = wait_status(_submit(batch, _gpu_definition(batch, "two-gpus", "2"), *PRINT_GPUS))
    assert both["status"] == "SUCCEEDED"
    assert _variables(read_log(both["container"]["logStreamName"]))["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_a_job_that_needs_more_gpus_than_the_machine_has_stays_runnable(
    batch: Any, wait_status: WaitStatus
) -> None:
    batch.create_job_queue(
        jobQueueName="gpu-too-many",
        priority=5,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "batch-fanout-ce"}],
    )
    too_many = _submit(batch, _gpu_definition(batch, "three-gpus", "3"), "print:never", queue="gpu-too-many")
    assert wait_status(too_many, ("RUNNABLE",))["status"] == "RUNNABLE"
    # A scheduling round after it ran another queue's GPU job to the end; this one still waits.
    assert wait_status(_submit(batch, _gpu_definition(batch), "print:x"))["status"] == "SUCCEEDED"
    assert wait_status(too_many, ("RUNNABLE",))["status"] == "RUNNABLE"
    batch.terminate_job(jobId=too_many, reason="cannot fit")
    assert wait_status(too_many)["statusReason"] == "cannot fit"


Statuses = Callable[..., dict[str, str]]
HeldThenReleased = Callable[..., None]


def test_a_running_jobs_gpus_stay_held_across_a_restart(
    tmp_path: Path,
    containers_dir: Path,
    statuses: Statuses,
    held_then_released: HeldThenReleased,
    until: Until,
) -> None:
    data_dir = tmp_path / "data"
    release = tmp_path / "release"
    handle = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=4, gpus=1)
    try:
        batch = handle.client("batch")
        definition = _gpu_definition(batch)
        holder = _submit(batch, definition, *PRINT_GPUS, f"wait:{release}")
        until(lambda: statuses(batch, holder) == {holder: "RUNNING"}, what="holder runs")
        handle.kill()
        handle = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=4, gpus=1)
        batch = handle.client("batch")
        waiting = _submit(batch, definition, *PRINT_GPUS)
        held_then_released(batch, holder, waiting, release, held="the GPU still held")
        logs = handle.client("logs")
        for job in batch.describe_jobs(jobs=[holder, waiting])["jobs"]:
            events = logs.get_log_events(
                logGroupName="/aws/batch/job",
                logStreamName=job["container"]["logStreamName"],
                startFromHead=True,
            )["events"]
            assert "CUDA_VISIBLE_DEVICES=0" in [event["message"] for event in events]
    finally:
        handle.stop()


def test_detection_counts_the_drivers_gpu_folders(tmp_path: Path) -> None:
    proc = tmp_path / "gpus"
    for address in ("0000:00:1e.0", "0000:00:1f.0"):
        (proc / address).mkdir(parents=True)
        (proc / address / "information").write_text("Model: \t\t NVIDIA A10G\n")
    assert detect_gpus(proc, nvidia_smi=None) == 2


def test_detection_falls_back_to_nvidia_smi_and_then_to_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = (
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-11111111-2222-3333-4444-555555555555)\n"
        "  MIG 1g.5gb     Device  0: (UUID: MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-66666666-7777-8888-9999-000000000000)\n"
    )
    assert parse_nvidia_smi_listing(listing) == 2
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    # A real program that prints what nvidia-smi -L prints, found on PATH as the endpoint finds it.
    tool.write_text(
        f"#!{sys.executable}\nimport sys\nassert sys.argv[1:] == ['-L']\nprint({listing!r}, end='')\n"
    )
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tool.parent))
    assert detect_gpus(tmp_path / "no-driver") == 2
    tool.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'\nexit 9\n"
    )
    assert detect_gpus(tmp_path / "no-driver") == 0
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert detect_gpus(tmp_path / "no-driver") == 0


@pytest.mark.parametrize("value", ["-1", "1.5", "all"])
def test_the_gpus_flag_takes_a_whole_number(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_fanout.cli",
            "local",
            "start",
            "--data-dir",
            str(tmp_path),
            "--gpus",
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"--gpus must be a whole number of 0 or more, got {value!r}" in result.stderr
    assert not (tmp_path / "endpoint.json").exists()


def test_gpus_come_back_after_failed_attempts_and_retries(
    batch: Any, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    definition = _gpu_definition(batch, "flaky-gpu", "2")
    job_id = str(
        batch.submit_job(
            jobName="flaky",
            jobQueue=QUEUE,
            jobDefinition=definition,
            retryStrategy={"attempts": 3},
            containerOverrides={"command": ["python", "testjob.py", *PRINT_GPUS, "fail-until-attempt:3"]},
        )["jobId"]
    )
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED" and len(job["attempts"]) == 3
    for attempt in job["attempts"]:
        assert _variables(read_log(attempt["container"]["logStreamName"]))["CUDA_VISIBLE_DEVICES"] == "0,1"
    # Both GPUs are free again: another two-GPU job runs.
    assert wait_status(_submit(batch, definition, "print:after"))["status"] == "SUCCEEDED"
