"""Faults on demand: throttling, failed indices, Spot reclaims (at the start and of running attempts)
and lost capacity, persisted; and the provider's throttling backoff tested against them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import EndpointHandle, running_endpoint, start_endpoint

from .conftest import job_statuses, register_test_definition

Faults = Callable[[dict[str, Any]], dict[str, Any]]
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
    endpoint: EndpointHandle, faults: Faults, submit: Submit
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


def test_cloudwatch_logs_operations_are_throttled_as_that_service_throttles(
    endpoint: EndpointHandle, faults: Faults
) -> None:
    faults({"throttle": {"DescribeLogGroups": {"count": 3}}})
    logs = endpoint.client("logs")  # 3 attempts per call (max_attempts 2 retries): all throttled
    with pytest.raises(ClientError) as raised:
        logs.describe_log_groups()
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert logs.describe_log_groups()["logGroups"][0]["logGroupName"] == "/aws/batch/job"


def test_a_misspelt_operation_is_refused_with_a_suggestion(endpoint: EndpointHandle) -> None:
    with pytest.raises(
        RuntimeError,
        match=r"throttle\.DescribeJob is not an AWS Batch or CloudWatch Logs operation; did you mean DescribeJobs\?",
    ):
        endpoint.faults({"throttle": {"DescribeJob": {"count": 1}}})
    assert endpoint.faults()["throttle"] == {}  # the document in force is unchanged


def test_the_providers_backoff_rides_out_throttling_and_gives_up_after_its_retries(
    endpoint: EndpointHandle,
    faults: Faults,
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
    faults: Faults,
    submit: Submit,
    wait_status: WaitStatus,
    read_log: Callable[[str], list[str]],
) -> None:
    faults({"failures": [{"jobName": "flaky*", "indices": [1, 3], "attempts": [1], "exitCode": 3}]})
    parent = submit(name="flaky-array", arrayProperties={"size": 4}, retryStrategy={"attempts": 2})
    assert wait_status(parent)["status"] == "SUCCEEDED"
    children = [wait_status(f"{parent}:{index}") for index in range(4)]
    assert [len(child["attempts"]) for child in children] == [1, 2, 1, 2]
    assert children[1]["attempts"][0]["container"]["exitCode"] == 3
    assert children[1]["attempts"][1]["container"]["exitCode"] == 0
    # The failed attempt's log says why it has no output of its own.
    assert read_log(children[1]["attempts"][0]["container"]["logStreamName"]) == [
        "[local endpoint: the faults document failed this attempt (exit code 3); its command did not run]"
    ]


def test_a_spot_reclaim_fires_on_status_reason_rules(
    faults: Faults, submit: Submit, wait_status: WaitStatus
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
    batch: Any, faults: Faults, submit: Submit, wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    faults({"capacity": {"batch-fanout-ce": 1}})
    release = tmp_path / "release"
    first, second, third = jobs = [submit(f"wait:{release}", name=f"capacity{index}") for index in range(3)]
    wait_status(first, ("RUNNING",))
    until(
        lambda: job_statuses(batch, *jobs) == {first: "RUNNING", second: "RUNNABLE", third: "RUNNABLE"},
        what="one job on the one vCPU left",
    )
    faults({})
    until(
        lambda: job_statuses(batch, *jobs) == dict.fromkeys(jobs, "RUNNING"), what="the capacity to come back"
    )
    release.touch()
    for job_id in jobs:
        assert wait_status(job_id)["status"] == "SUCCEEDED"


def test_faults_are_checked_and_survive_a_restart(tmp_path: Path, containers_dir: Path) -> None:
    with running_endpoint(tmp_path / "data", containers_dir=containers_dir) as handle:
        with pytest.raises(RuntimeError, match=r"throttle\.DescribeJobs\.rate must be between 0 and 1"):
            handle.faults({"throttle": {"DescribeJobs": {"rate": 2}}})
        with pytest.raises(RuntimeError, match="unknown keys"):
            handle.faults({"throtle": {}})
        with pytest.raises(RuntimeError, match=r"failures\[0\] has unknown keys \['index'\]"):
            handle.faults({"failures": [{"jobName": "a", "index": [1], "exitCode": 3}]})
        with pytest.raises(RuntimeError, match=r"failures\[0\]\.reclaim must be true or false"):
            handle.faults({"failures": [{"jobName": "a", "reclaim": "yes"}]})
        wanted = {"throttle": {"SubmitJob": {"count": 5}}, "failures": [], "capacity": {"batch-fanout-ce": 0}}
        assert handle.faults(wanted) == wanted
    with running_endpoint(tmp_path / "data", containers_dir=containers_dir) as restarted:
        assert restarted.faults() == wanted


def test_a_throttled_call_is_refused_before_its_input_is_validated(
    endpoint: EndpointHandle, faults: Faults
) -> None:
    """AWS throttles a call before it reads it: an invalid DescribeJobs gets a 429, not a 400."""
    # botocore validates input before sending; raw HTTP sends what botocore would refuse.
    body = json.dumps({"jobs": "not-a-list"}).encode()

    def call() -> tuple[int, str]:
        headers = endpoint.signed_headers(
            "POST", "/v1/describejobs", body, {"Content-Type": "application/json"}
        )
        request = urllib.request.Request(endpoint.url + "/v1/describejobs", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, ""
        except urllib.error.HTTPError as error:
            return error.code, str(error.headers["x-amzn-ErrorType"])

    faults({"throttle": {"DescribeJobs": {"count": 1}}})
    assert call() == (429, "TooManyRequestsException")
    assert call() == (400, "ClientException")  # the count is spent: now the input is checked


def test_a_running_child_of_an_array_is_reclaimed_and_retried(  # noqa: PLR0917 - pytest fixtures
    endpoint: EndpointHandle,
    submit: Submit,
    describe: Callable[[str], dict[str, Any]],
    wait_status: WaitStatus,
    read_log: Callable[[str], list[str]],
    until: Until,
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    strategy = {
        "attempts": 2,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = submit(
        "trap-sigterm",
        f"pidfile:{pids}",
        f"wait:{release}",
        name="spot-array",
        arrayProperties={"size": 3},
        retryStrategy=strategy,
    )
    # Reclaimed at work: its SIGTERM handler is in place and it waits, not starting up.
    until((pids / "1-1.pid").exists, what="child 1 to be at work")
    first = describe(f"{parent}:1")
    assert first["status"] == "RUNNING"

    assert endpoint.reclaim(f"{parent}:1") == [f"{parent}:1"]

    until(lambda: describe(f"{parent}:1")["attempts"], what="the reclaimed attempt to end")
    release.touch()
    assert wait_status(parent)["status"] == "SUCCEEDED"
    children = [wait_status(f"{parent}:{index}") for index in range(3)]
    assert [len(child["attempts"]) for child in children] == [1, 2, 1]
    lost, retried = children[1]["attempts"]
    assert re.fullmatch(r"Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.", lost["statusReason"])
    assert "exitCode" not in lost["container"]
    assert lost["container"]["logStreamName"] == first["container"]["logStreamName"]
    # The job's process group got SIGTERM, as from a host that shuts down.
    assert "got SIGTERM" in read_log(lost["container"]["logStreamName"])
    assert retried["container"]["exitCode"] == 0
    assert children[1]["attempts"][1]["statusReason"] == "Essential container in task exited"


def test_a_reclaimed_job_that_ignores_sigterm_is_killed_and_exit_rules_fire(
    endpoint: EndpointHandle, submit: Submit, wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    strategy = {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "EXIT"}]}
    job_id = submit(
        "ignore-sigterm",
        f"pidfile:{tmp_path}",
        f"wait:{tmp_path / 'never'}",
        name="spot-stubborn",
        retryStrategy=strategy,
    )
    until((tmp_path / "--1.pid").exists, what="the job to ignore SIGTERM and wait")
    assert endpoint.reclaim(job_id) == [job_id]
    # SIGTERM is ignored; SIGKILL comes after the endpoint's kill grace (2 s in these tests).
    job = wait_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("Host EC2 (instance i-")
    [attempt] = job["attempts"]
    assert "exitCode" not in attempt["container"]
    assert "exitCode" not in job["container"]


def test_reclaim_names_what_it_cannot_reclaim(
    endpoint: EndpointHandle, submit: Submit, wait_status: WaitStatus
) -> None:
    with pytest.raises(RuntimeError, match="Job no-such-job not found"):
        endpoint.reclaim("no-such-job")
    finished = submit(name="spot-finished")
    wait_status(finished)
    with pytest.raises(
        RuntimeError, match=f"Nothing to reclaim: no attempt of {finished} is STARTING or RUNNING"
    ):
        endpoint.reclaim(finished)
    body = json.dumps({"job": finished}).encode()
    headers = endpoint.signed_headers("POST", "/_local/reclaim", body, {"Content-Type": "application/json"})
    request = urllib.request.Request(endpoint.url + "/_local/reclaim", data=body, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "Invalid reclaim request" in json.loads(refused.value.read())["message"]


def test_reclaiming_a_compute_environment_with_its_capacity_gone_holds_the_retries_runnable(  # noqa: PLR0917
    endpoint: EndpointHandle,
    faults: Faults,
    submit: Submit,
    wait_status: WaitStatus,
    until: Until,
    tmp_path: Path,
) -> None:
    """The whole Spot fleet goes: every running attempt of the environment is reclaimed and, with its
    capacity at 0, the retries wait RUNNABLE until the capacity comes back."""
    release, pids = tmp_path / "release", tmp_path / "pids"
    pids.mkdir()
    parent = submit(
        f"pidfile:{pids}",
        f"wait:{release}",
        name="fleet",
        arrayProperties={"size": 2},
        retryStrategy={"attempts": 2},
    )
    children = [f"{parent}:0", f"{parent}:1"]
    until(lambda: len(list(pids.iterdir())) == 2, what="both children to be at work")
    batch = endpoint.client("batch")
    faults({"capacity": {"batch-fanout-ce": 0}})

    assert sorted(endpoint.reclaim(compute_environments=("batch-fanout-ce",))) == children

    def states() -> list[tuple[str, int]]:
        return [(job["status"], len(job["attempts"])) for job in batch.describe_jobs(jobs=children)["jobs"]]

    until(lambda: states() == [("RUNNABLE", 1)] * 2, what="both retries to wait for capacity")
    faults({})
    release.touch()
    assert wait_status(parent)["status"] == "SUCCEEDED"
    for child in batch.describe_jobs(jobs=children)["jobs"]:
        lost, retried = child["attempts"]
        assert lost["statusReason"].startswith("Host EC2 (instance i-")
        assert retried["container"]["exitCode"] == 0
    with pytest.raises(RuntimeError, match="Compute environment no-such-ce not found"):
        endpoint.reclaim(compute_environments=("no-such-ce",))
    with pytest.raises(
        RuntimeError, match="Nothing to reclaim: no attempt of batch-fanout-ce is STARTING or RUNNING"
    ):
        endpoint.reclaim(compute_environments=("batch-fanout-ce",))


def test_the_cli_reclaims_a_running_job(
    endpoint: EndpointHandle, submit: Submit, wait_status: WaitStatus, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job_id = submit(f"wait:{release}", name="spot-cli", retryStrategy={"attempts": 2})
    wait_status(job_id, ("RUNNING",))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_fanout.local",
            "faults",
            "--data-dir",
            str(endpoint.data_dir),
            "--reclaim",
            job_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"reclaimed {job_id}"]
    release.touch()
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    lost, retried = job["attempts"]
    assert lost["statusReason"].startswith("Host EC2 (instance i-")
    assert retried["container"]["exitCode"] == 0


def test_a_reclaim_holds_across_a_kill_of_the_endpoint(
    tmp_path: Path, containers_dir: Path, until: Until
) -> None:
    """Reclaimed, then the endpoint is killed before the job has ended: after the restart the attempt
    still ends as reclaimed (the job ignores SIGTERM, so it outlives the kill by the grace)."""
    data_dir = tmp_path / "data"
    handle = start_endpoint(data_dir, containers_dir=containers_dir, kill_grace_seconds=2)
    try:
        batch = handle.client("batch")
        definition = register_test_definition(batch)
        strategy = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "EXIT"}]}
        job_id = batch.submit_job(
            jobName="spot-restart",
            jobQueue="batch-fanout-queue",
            jobDefinition=definition,
            containerOverrides={
                "command": ["python", "testjob.py", "ignore-sigterm", f"pidfile:{tmp_path}", "spin"]
            },
            retryStrategy=strategy,
        )["jobId"]
        until((tmp_path / "--1.pid").exists, what="the job to ignore SIGTERM and spin")
        assert handle.reclaim(job_id) == [job_id]
    finally:
        handle.kill()
    with running_endpoint(data_dir, containers_dir=containers_dir, kill_grace_seconds=2) as restarted:
        batch = restarted.client("batch")

        def finished() -> dict[str, Any] | None:
            job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
            return job if job["status"] in ("SUCCEEDED", "FAILED") else None

        job = until(finished, 60, "the reclaimed job to end after the restart")
        assert job["status"] == "FAILED"
        [attempt] = job["attempts"]
        assert attempt["statusReason"].startswith("Host EC2 (instance i-")
        assert "exitCode" not in attempt["container"]


def test_a_stored_document_that_no_longer_passes_the_checks_is_dropped_at_start(
    tmp_path: Path, containers_dir: Path
) -> None:
    """A store written by an endpoint with laxer checks (here: a misspelt operation) must not keep the
    endpoint from starting; it starts without faults and says so in its log."""
    from batch_fanout.local.store import Store

    data_dir = tmp_path / "data"
    start_endpoint(data_dir, containers_dir=containers_dir).stop()
    store = Store(data_dir / "state.sqlite3")
    store.save_resource("faults", "faults", {"throttle": {"DescribeJob": {"count": 1}}})
    store.close()
    with running_endpoint(data_dir, containers_dir=containers_dir) as handle:
        assert handle.faults() == {"throttle": {}, "failures": [], "capacity": {}}
    assert "ignoring the stored faults document" in (data_dir / "server.log").read_text()
