"""Nothing is lost: ``kill -9`` of the endpoint in the middle of an array, and a graceful stop."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import start_endpoint

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
QUEUE = "batch-fanout-queue"
RESTART = "Attempt interrupted: the local endpoint restarted while the attempt was running"
STOPPED = "Attempt interrupted: the local endpoint was stopped while the attempt was running"
Until = Callable[..., Any]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _statuses(batch: Any, ids: list[str]) -> dict[str, str]:
    return {job["jobId"]: job["status"] for job in batch.describe_jobs(jobs=ids)["jobs"]}


def _submit_array(batch: Any, folder: Path, size: int, retries: int | None) -> str:
    """An array whose children 0 and 1 finish at once and the others wait for ``folder/release``."""
    folder.mkdir(exist_ok=True)
    definition = batch.register_job_definition(
        jobDefinitionName="recovery",
        type="container",
        containerProperties={
            "image": IMAGE,
            "command": [
                "python",
                "testjob.py",
                f"pidfile:{folder}",
                "exit-index:0:0",
                "exit-index:1:0",
                f"wait:{folder / 'release'}",
            ],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    )["jobDefinitionArn"]
    extra: dict[str, Any] = {"retryStrategy": {"attempts": retries}} if retries else {}
    return str(
        batch.submit_job(
            jobName="recovery",
            jobQueue=QUEUE,
            jobDefinition=definition,
            arrayProperties={"size": size},
            **extra,
        )["jobId"]
    )


@pytest.mark.slow
def test_kill_9_in_the_middle_of_an_array_loses_nothing(
    tmp_path: Path, containers_dir: Path, until: Until
) -> None:
    data_dir = tmp_path / "data"
    handle = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=6, kill_grace_seconds=2)
    try:
        batch = handle.client("batch")
        retried = _submit_array(batch, tmp_path / "retried", size=6, retries=2)
        plain = _submit_array(batch, tmp_path / "plain", size=4, retries=None)
        retried_children = [f"{retried}:{index}" for index in range(6)]
        plain_children = [f"{plain}:{index}" for index in range(4)]
        expected = ["SUCCEEDED"] * 2 + ["RUNNING"] * 4 + ["SUCCEEDED"] * 2 + ["RUNNING"] * 2
        until(
            lambda: list(_statuses(batch, retried_children + plain_children).values()) == expected,
            what="the first children done and the others running",
        )
        old_pids = [int((tmp_path / "retried" / f"{index}-1.pid").read_text()) for index in range(2, 6)]
        handle.kill()
    except BaseException:
        handle.stop()
        raise

    restarted = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=6, kill_grace_seconds=2)
    try:
        batch = restarted.client("batch")
        until(lambda: not any(_alive(pid) for pid in old_pids), what="the orphaned attempts to be killed")
        jobs = {job["jobId"]: job for job in batch.describe_jobs(jobs=[retried, *retried_children])["jobs"]}
        assert set(jobs) == {retried, *retried_children}
        for child in retried_children[:2]:
            assert jobs[child]["status"] == "SUCCEEDED"
            assert len(jobs[child]["attempts"]) == 1
        for child in retried_children[2:]:
            assert jobs[child]["attempts"][0]["statusReason"] == RESTART
            assert jobs[child]["status"] in ("RUNNABLE", "STARTING", "RUNNING")

        plain_jobs = {job["jobId"]: job for job in batch.describe_jobs(jobs=[plain, *plain_children])["jobs"]}
        assert [plain_jobs[child]["status"] for child in plain_children] == ["SUCCEEDED"] * 2 + ["FAILED"] * 2
        for child in plain_children[2:]:
            assert plain_jobs[child]["statusReason"] == RESTART
            assert len(plain_jobs[child]["attempts"]) == 1
        assert plain_jobs[plain]["status"] == "FAILED"

        (tmp_path / "retried" / "release").touch()
        until(lambda: _statuses(batch, [retried])[retried] == "SUCCEEDED", what="the retried array")
        final = {job["jobId"]: job for job in batch.describe_jobs(jobs=retried_children)["jobs"]}
        assert [len(final[child]["attempts"]) for child in retried_children] == [1, 1, 2, 2, 2, 2]
        assert {final[child]["attempts"][1]["container"]["exitCode"] for child in retried_children[2:]} == {0}
    finally:
        restarted.stop()


def test_graceful_stop_records_running_attempts_and_retries_them_on_start(
    tmp_path: Path, containers_dir: Path, until: Until
) -> None:
    data_dir = tmp_path / "data"
    handle = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=2, kill_grace_seconds=2)
    try:
        batch = handle.client("batch")
        definition = batch.register_job_definition(
            jobDefinitionName="graceful",
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": ["python", "testjob.py", f"wait:{tmp_path / 'release'}"],
            },
        )["jobDefinitionArn"]
        retried = batch.submit_job(
            jobName="retried", jobQueue=QUEUE, jobDefinition=definition, retryStrategy={"attempts": 2}
        )["jobId"]
        single = batch.submit_job(jobName="single", jobQueue=QUEUE, jobDefinition=definition)["jobId"]
        until(
            lambda: set(_statuses(batch, [retried, single]).values()) == {"RUNNING"}, what="both jobs to run"
        )
    finally:
        handle.stop()

    restarted = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=2)
    try:
        batch = restarted.client("batch")
        stopped = batch.describe_jobs(jobs=[single])["jobs"][0]
        assert stopped["status"] == "FAILED"
        assert stopped["statusReason"] == STOPPED
        assert stopped["attempts"][0]["container"]["exitCode"] == 143
        (tmp_path / "release").touch()
        until(lambda: _statuses(batch, [retried])[retried] == "SUCCEEDED", what="the retried job")
        job = batch.describe_jobs(jobs=[retried])["jobs"][0]
        assert [attempt["statusReason"] for attempt in job["attempts"]] == [
            STOPPED,
            "Essential container in task exited",
        ]
    finally:
        restarted.stop()
