"""Retry strategies, CancelJob and TerminateJob on the local endpoint, through boto3."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Submit = Callable[..., str]
Describe = Callable[[str], dict[str, Any]]
WaitStatus = Callable[..., dict[str, Any]]
ReadLog = Callable[[str], list[str]]
Until = Callable[..., Any]


def test_failed_attempts_are_retried_and_counted(
    submit: Submit, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    job = wait_status(submit("fail-until-attempt:3", "print:succeeded", retryStrategy={"attempts": 3}))
    assert job["status"] == "SUCCEEDED"
    assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [3, 3, 0]
    streams = [attempt["container"]["logStreamName"] for attempt in job["attempts"]]
    assert len(set(streams)) == 3
    assert read_log(streams[0]) == ["failing attempt 1"]
    assert read_log(streams[1]) == ["failing attempt 2"]
    assert read_log(streams[2]) == ["succeeded"]


def test_attempts_run_out(submit: Submit, wait_status: WaitStatus) -> None:
    job = wait_status(submit("fail-until-attempt:5", retryStrategy={"attempts": 2}))
    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == 2


@pytest.mark.parametrize(
    ("rules", "exit_code", "attempts"),
    [
        ([{"onExitCode": "3", "action": "EXIT"}], 3, 1),
        ([{"onExitCode": "4*", "action": "RETRY"}, {"onExitCode": "*", "action": "EXIT"}], 45, 3),
        ([{"onExitCode": "4*", "action": "RETRY"}, {"onExitCode": "*", "action": "exit"}], 3, 1),
        ([{"onExitCode": "99", "action": "EXIT"}], 3, 3),  # no rule matches: retried
        ([{"onStatusReason": "Essential*", "action": "EXIT"}], 3, 1),
        ([{"onReason": "OutOfMemory*", "action": "EXIT"}], 3, 3),  # reason is empty: no match
        ([{"onExitCode": "3", "onStatusReason": "nothing*", "action": "EXIT"}], 3, 3),  # both must match
    ],
)
def test_evaluate_on_exit_rules(
    submit: Submit, wait_status: WaitStatus, rules: list[dict[str, str]], exit_code: int, attempts: int
) -> None:
    job = wait_status(submit(f"exit:{exit_code}", retryStrategy={"attempts": 3, "evaluateOnExit": rules}))
    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == attempts
    assert job["retryStrategy"]["attempts"] == 3


def test_cancel_fails_a_waiting_job_but_not_a_running_one(
    batch: Any, submit: Submit, wait_status: WaitStatus, describe: Describe, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    running = submit(f"wait:{release}")
    waiting = submit("print:never", dependsOn=[{"jobId": running}], retryStrategy={"attempts": 3})
    wait_status(running, ("RUNNING",))
    wait_status(waiting, ("PENDING",))
    batch.cancel_job(jobId=waiting, reason="no longer needed")
    batch.cancel_job(jobId=running, reason="too late")
    cancelled = wait_status(waiting)
    assert cancelled["status"] == "FAILED"
    assert cancelled["statusReason"] == "no longer needed"
    assert cancelled["isCancelled"] is True
    assert cancelled["attempts"] == []
    assert describe(running)["status"] == "RUNNING"
    release.touch()
    assert wait_status(running)["status"] == "SUCCEEDED"


def test_terminate_sends_sigterm_and_is_not_retried(  # noqa: PLR0917 - pytest fixtures
    batch: Any, submit: Submit, wait_status: WaitStatus, read_log: ReadLog, until: Until, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    job_id = submit("trap-sigterm", f"touch:{ready}", "spin", retryStrategy={"attempts": 3})
    running = wait_status(job_id, ("RUNNING",))
    until(ready.exists, what="the job to install its SIGTERM handler")
    batch.terminate_job(jobId=job_id, reason="stopped by the test")
    job = wait_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "stopped by the test"
    assert job["isTerminated"] is True
    assert len(job["attempts"]) == 1
    assert job["attempts"][0]["container"]["exitCode"] == 143
    assert "got SIGTERM" in read_log(running["container"]["logStreamName"])


def test_terminate_kills_a_job_that_ignores_sigterm_after_the_grace(
    batch: Any, submit: Submit, wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    job_id = submit("ignore-sigterm", f"touch:{ready}", "spin")
    until(ready.exists, what="the job to ignore SIGTERM")
    batch.terminate_job(jobId=job_id, reason="kill it")
    job = wait_status(job_id)  # the test endpoint's grace is 2 s
    assert job["status"] == "FAILED"
    assert job["attempts"][0]["container"]["exitCode"] == 137


def test_terminate_and_cancel_reach_every_child_of_an_array(
    batch: Any, submit: Submit, wait_status: WaitStatus, tmp_path: Path
) -> None:
    spinning = submit("spin", arrayProperties={"size": 3})
    for index in range(3):
        wait_status(f"{spinning}:{index}", ("RUNNING",))
    batch.terminate_job(jobId=spinning, reason="terminate the array")
    parent = wait_status(spinning)
    assert parent["status"] == "FAILED"
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    for index in range(3):
        child = wait_status(f"{spinning}:{index}")
        assert child["statusReason"] == "terminate the array"

    gate = submit(f"wait:{tmp_path / 'never'}")
    waiting = submit("print:never", arrayProperties={"size": 3}, dependsOn=[{"jobId": gate}])
    wait_status(waiting, ("PENDING",))
    batch.cancel_job(jobId=waiting, reason="cancel the array")
    cancelled = wait_status(waiting)
    assert cancelled["status"] == "FAILED"
    for index in range(3):
        child = wait_status(f"{waiting}:{index}")
        assert child["statusReason"] == "cancel the array"
        assert child["attempts"] == []
    batch.terminate_job(jobId=gate, reason="done")
    assert wait_status(gate)["status"] == "FAILED"


@pytest.mark.slow
def test_attempt_timeout_sends_sigterm_then_sigkill_and_is_not_retried(
    submit: Submit, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    # 60 s is AWS's minimum timeout; both jobs run side by side so the test takes it once.
    timeout = {"attemptDurationSeconds": 60}
    polite = submit("trap-sigterm", "spin", timeout=timeout, retryStrategy={"attempts": 2})
    stubborn = submit("ignore-sigterm", "spin", timeout=timeout, retryStrategy={"attempts": 2})
    polite_job = wait_status(polite, timeout=90)
    stubborn_job = wait_status(stubborn, timeout=90)
    for job in (polite_job, stubborn_job):
        assert job["status"] == "FAILED"
        assert job["statusReason"] == "Job attempt duration exceeded timeout"
        assert len(job["attempts"]) == 1
        assert job["stoppedAt"] - job["startedAt"] >= 60_000
    assert polite_job["attempts"][0]["container"]["exitCode"] == 143
    assert "got SIGTERM" in read_log(polite_job["container"]["logStreamName"])
    assert stubborn_job["attempts"][0]["container"]["exitCode"] == 137
    # SIGKILL came after the endpoint's grace (2 s in these tests), not with the SIGTERM.
    assert stubborn_job["stoppedAt"] - stubborn_job["startedAt"] >= 62_000
