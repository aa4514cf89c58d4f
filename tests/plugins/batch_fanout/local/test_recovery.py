"""Jobs outlive the endpoint: ``kill -9`` of it in the middle of an array redoes nothing; a graceful
stop stops and records the running attempts."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import EndpointHandle, start_endpoint

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
    """An array whose children write their pid, print a line, wait for ``folder/release``, then print
    100 more lines and a last one (so that a log cut short shows)."""
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
                "print:before",
                f"wait:{folder / 'release'}",
                "lines:100:40",
                "print:after",
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


def _wait_running(batch: Any, children: list[str], folder: Path, until: Until) -> None:
    """Until every child runs and its job process has started (its pid file is there)."""
    until(
        lambda: (
            set(_statuses(batch, children).values()) == {"RUNNING"}
            and len(list(folder.glob("*-1.pid"))) == len(children)
        ),
        timeout=60,
        what="every child to run",
    )


def _journal(data_dir: Path) -> dict[str, dict[str, Any]]:
    """What the supervisors recorded, by attempt (the journals' documented format)."""
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted((data_dir / "logs").glob("journal-*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            entries.setdefault(entry.pop("attempt"), {}).update(entry)
    return entries


def _complete_log(read_log: Callable[[str], list[str]], stream: str) -> bool:
    return read_log(stream) == ["before", *["x" * 40] * 100, "after"]


def _read_log(handle: EndpointHandle) -> Callable[[str], list[str]]:
    logs = handle.client("logs")

    def read(stream: str) -> list[str]:
        events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)
        return [event["message"] for event in events["events"]]

    return read


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_40_child_array_redoes_nothing(
    tmp_path: Path, containers_dir: Path, until: Until
) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "array"
    handle = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=40, kill_grace_seconds=2)
    try:
        batch = handle.client("batch")
        parent = _submit_array(batch, folder, size=40, retries=None)
        children = [f"{parent}:{index}" for index in range(40)]
        _wait_running(batch, children, folder, until)
        job_pids = [int(path.read_text()) for path in folder.glob("*-1.pid")]
        handle.kill()
    except BaseException:
        handle.stop()
        raise

    # The jobs run on without the endpoint and finish while it is down; their supervisors record it.
    assert all(_alive(pid) for pid in job_pids)
    (folder / "release").touch()
    until(
        lambda: sum("status" in entry for entry in _journal(data_dir).values()) == 40,
        timeout=60,
        what="every child's supervisor to record its exit",
    )

    restarted = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=40, kill_grace_seconds=2)
    try:
        batch = restarted.client("batch")
        until(lambda: _statuses(batch, [parent])[parent] == "SUCCEEDED", what="the array")
        jobs = [
            job
            for start in range(0, 40, 20)
            for job in batch.describe_jobs(jobs=children[start : start + 20])["jobs"]
        ]
        assert [job["status"] for job in jobs] == ["SUCCEEDED"] * 40
        assert [len(job["attempts"]) for job in jobs] == [1] * 40
        assert {job["attempts"][0]["container"]["exitCode"] for job in jobs} == {0}
        assert not [job for job in jobs if "interrupted" in job["attempts"][0]["statusReason"]]
        read_log = _read_log(restarted)
        assert all(_complete_log(read_log, job["container"]["logStreamName"]) for job in jobs)
    finally:
        restarted.stop()


@pytest.mark.slow
def test_a_restarted_endpoint_adopts_running_attempts_and_retries_only_those_whose_supervisor_is_gone(
    tmp_path: Path, containers_dir: Path, until: Until
) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "array"
    handle = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=4, kill_grace_seconds=2)
    try:
        batch = handle.client("batch")
        parent = _submit_array(batch, folder, size=3, retries=2)
        children = [f"{parent}:{index}" for index in range(3)]
        _wait_running(batch, children, folder, until)
        stream = batch.describe_jobs(jobs=[children[2]])["jobs"][0]["container"]["logStreamName"]
        handle.kill()
    except BaseException:
        handle.stop()
        raise

    # Child 2 loses its supervisor too (as if the machine's OOM killer took it).
    attempt_id = stream.rsplit("/", 1)[-1]
    supervisor = _journal(data_dir)[attempt_id]["supervisor"]
    os.kill(supervisor, signal.SIGKILL)
    until(lambda: not _alive(supervisor), what="child 2's supervisor to die")
    orphan = int((folder / "2-1.pid").read_text())

    restarted = start_endpoint(data_dir, containers_dir=containers_dir, vcpus=4, kill_grace_seconds=2)
    try:
        batch = restarted.client("batch")
        until(lambda: not _alive(orphan), what="child 2's orphaned job to be killed")
        jobs = {job["jobId"]: job for job in batch.describe_jobs(jobs=children)["jobs"]}
        assert [jobs[child]["status"] for child in children[:2]] == ["RUNNING", "RUNNING"]
        assert [jobs[child]["attempts"] for child in children[:2]] == [[], []]
        assert jobs[children[2]]["attempts"][0]["statusReason"] == RESTART
        (folder / "release").touch()
        until(lambda: _statuses(batch, [parent])[parent] == "SUCCEEDED", what="the array")
        final = {job["jobId"]: job for job in batch.describe_jobs(jobs=children)["jobs"]}
        assert [len(final[child]["attempts"]) for child in children] == [1, 1, 2]
        read_log = _read_log(restarted)
        assert all(_complete_log(read_log, final[child]["container"]["logStreamName"]) for child in children)
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
