"""Jobs outlive the endpoint: ``kill -9`` of it in the middle of an array redoes nothing; a graceful
stop stops and records the running attempts."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import QUEUE, TEST_IMAGE, attempt_journal, endpoint_in, job_statuses, log_messages

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
            "image": TEST_IMAGE,
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


def _run_array(
    batch: Any, folder: Path, size: int, retries: int | None, until: Until
) -> tuple[str, list[str]]:
    """Submit the array and wait until every child runs and its job process has started (its pid file
    is there); returns the parent's and the children's ids."""
    parent = _submit_array(batch, folder, size, retries)
    children = [f"{parent}:{index}" for index in range(size)]
    until(
        lambda: (
            set(job_statuses(batch, *children).values()) == {"RUNNING"}
            and len(list(folder.glob("*-1.pid"))) == len(children)
        ),
        timeout=60,
        what="every child to run",
    )
    return parent, children


def _complete_log(logs: Any, stream: str) -> bool:
    return log_messages(logs, stream) == ["before", *["x" * 40] * 100, "after"]


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_40_child_array_redoes_nothing(tmp_path: Path, until: Until) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "array"
    with endpoint_in(data_dir, vcpus=40) as handle:
        parent, children = _run_array(handle.client("batch"), folder, size=40, retries=None, until=until)
        job_pids = [int(path.read_text()) for path in folder.glob("*-1.pid")]
        handle.kill()

    # The jobs run on without the endpoint and finish while it is down; their supervisors record it.
    assert all(_alive(pid) for pid in job_pids)
    (folder / "release").touch()
    until(
        lambda: sum("status" in entry for entry in attempt_journal(data_dir).values()) == 40,
        timeout=60,
        what="every child's supervisor to record its exit",
    )

    with endpoint_in(data_dir, vcpus=40) as restarted:
        batch = restarted.client("batch")
        until(lambda: job_statuses(batch, parent)[parent] == "SUCCEEDED", what="the array")
        jobs = [
            job
            for start in range(0, 40, 20)
            for job in batch.describe_jobs(jobs=children[start : start + 20])["jobs"]
        ]
        assert [job["status"] for job in jobs] == ["SUCCEEDED"] * 40
        assert [len(job["attempts"]) for job in jobs] == [1] * 40
        assert {job["attempts"][0]["container"]["exitCode"] for job in jobs} == {0}
        assert not [job for job in jobs if "interrupted" in job["attempts"][0]["statusReason"]]
        logs = restarted.client("logs")
        assert all(_complete_log(logs, job["container"]["logStreamName"]) for job in jobs)


@pytest.mark.slow
def test_a_restarted_endpoint_adopts_running_attempts_and_retries_only_those_whose_supervisor_is_gone(
    tmp_path: Path, until: Until
) -> None:
    data_dir = tmp_path / "data"
    folder = tmp_path / "array"
    with endpoint_in(data_dir, vcpus=4) as handle:
        batch = handle.client("batch")
        parent, children = _run_array(batch, folder, size=3, retries=2, until=until)
        stream = batch.describe_jobs(jobs=[children[2]])["jobs"][0]["container"]["logStreamName"]
        handle.kill()

    # Child 2 loses its supervisor too (as if the machine's OOM killer took it).
    attempt_id = stream.rsplit("/", 1)[-1]
    supervisor = attempt_journal(data_dir)[attempt_id]["supervisor"]
    os.kill(supervisor, signal.SIGKILL)
    until(lambda: not _alive(supervisor), what="child 2's supervisor to die")
    orphan = int((folder / "2-1.pid").read_text())

    with endpoint_in(data_dir, vcpus=4) as restarted:
        batch = restarted.client("batch")
        until(lambda: not _alive(orphan), what="child 2's orphaned job to be killed")
        jobs = {job["jobId"]: job for job in batch.describe_jobs(jobs=children)["jobs"]}
        assert [jobs[child]["status"] for child in children[:2]] == ["RUNNING", "RUNNING"]
        assert [jobs[child]["attempts"] for child in children[:2]] == [[], []]
        assert jobs[children[2]]["attempts"][0]["statusReason"] == RESTART
        (folder / "release").touch()
        until(lambda: job_statuses(batch, parent)[parent] == "SUCCEEDED", what="the array")
        final = {job["jobId"]: job for job in batch.describe_jobs(jobs=children)["jobs"]}
        assert [len(final[child]["attempts"]) for child in children] == [1, 1, 2]
        logs = restarted.client("logs")
        assert all(_complete_log(logs, final[child]["container"]["logStreamName"]) for child in children)


def test_graceful_stop_records_running_attempts_and_retries_them_on_start(
    tmp_path: Path, until: Until
) -> None:
    data_dir = tmp_path / "data"
    with endpoint_in(data_dir, vcpus=2) as handle:
        batch = handle.client("batch")
        definition = batch.register_job_definition(
            jobDefinitionName="graceful",
            type="container",
            containerProperties={
                "image": TEST_IMAGE,
                "command": ["python", "testjob.py", f"wait:{tmp_path / 'release'}"],
            },
        )["jobDefinitionArn"]
        retried = batch.submit_job(
            jobName="retried", jobQueue=QUEUE, jobDefinition=definition, retryStrategy={"attempts": 2}
        )["jobId"]
        single = batch.submit_job(jobName="single", jobQueue=QUEUE, jobDefinition=definition)["jobId"]
        until(
            lambda: set(job_statuses(batch, retried, single).values()) == {"RUNNING"}, what="both jobs to run"
        )

    with endpoint_in(data_dir, vcpus=2, kill_grace_seconds=None) as restarted:
        batch = restarted.client("batch")
        stopped = batch.describe_jobs(jobs=[single])["jobs"][0]
        assert stopped["status"] == "FAILED"
        assert stopped["statusReason"] == STOPPED
        assert stopped["attempts"][0]["container"]["exitCode"] == 143
        (tmp_path / "release").touch()
        until(lambda: job_statuses(batch, retried)[retried] == "SUCCEEDED", what="the retried job")
        job = batch.describe_jobs(jobs=[retried])["jobs"][0]
        assert [attempt["statusReason"] for attempt in job["attempts"]] == [
            STOPPED,
            "Essential container in task exited",
        ]
