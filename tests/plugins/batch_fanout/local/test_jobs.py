"""Job semantics of the local endpoint, through its HTTP API with boto3: states, arrays, dependencies."""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Submit = Callable[..., str]
Describe = Callable[[str], dict[str, Any]]
WaitStatus = Callable[..., dict[str, Any]]
ReadLog = Callable[[str], list[str]]
Until = Callable[..., Any]


def test_job_goes_through_its_states_with_times_attempts_and_log(
    submit: Submit, wait_status: WaitStatus, describe: Describe, read_log: ReadLog, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job_id = submit(f"touch:{tmp_path / 'started'}", f"wait:{release}", "print:done waiting")
    running = wait_status(job_id, ("RUNNING",))
    assert running["attempts"] == []
    assert running["startedAt"] >= running["createdAt"]
    assert "stoppedAt" not in running
    assert re.fullmatch(r"testjob/default/[0-9a-f]{32}", running["container"]["logStreamName"])

    dependent = submit("print:after", name="dependent", dependsOn=[{"jobId": job_id}])
    assert wait_status(dependent, ("PENDING",))["dependsOn"] == [{"jobId": job_id}]

    release.touch()
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["createdAt"] <= job["startedAt"] <= job["stoppedAt"]
    assert job["statusReason"] == "Essential container in task exited"
    [attempt] = job["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["logStreamName"] == running["container"]["logStreamName"]
    assert attempt["startedAt"] <= attempt["stoppedAt"]
    assert job["container"]["exitCode"] == 0
    assert read_log(attempt["container"]["logStreamName"]) == ["done waiting"]

    after = wait_status(dependent)
    assert after["status"] == "SUCCEEDED"
    assert after["startedAt"] >= job["stoppedAt"]


def test_failed_job_reports_exit_code(submit: Submit, wait_status: WaitStatus) -> None:
    job = wait_status(submit("print:about to fail", "exit:7"))
    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 7
    assert job["attempts"][0]["container"]["exitCode"] == 7
    assert job["statusReason"] == "Essential container in task exited"


def test_job_sees_aws_batch_variables_environment_and_folder(
    batch: Any, submit: Submit, wait_status: WaitStatus, read_log: ReadLog, containers_dir: Path
) -> None:
    definition = batch.register_job_definition(
        jobDefinitionName="testjob-env",
        type="container",
        containerProperties={
            "image": "registry.example/batch-fanout/testjob:1",
            "command": ["python", "testjob.py", "env"],
            "environment": [{"name": "CUSTOM", "value": "from-definition"}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
        },
    )["jobDefinitionArn"]
    parent_id = submit(
        jobDefinition=definition,
        arrayProperties={"size": 3},
        containerOverrides={"environment": [{"name": "CUSTOM", "value": "from-override"}]},
    )
    parent = wait_status(parent_id)
    assert parent["status"] == "SUCCEEDED"
    for index in range(3):
        child = wait_status(f"{parent_id}:{index}")
        [variables] = [json.loads(line) for line in read_log(child["container"]["logStreamName"])]
        assert variables["AWS_BATCH_JOB_ID"] == f"{parent_id}:{index}"
        assert variables["AWS_BATCH_JOB_ARRAY_INDEX"] == str(index)
        assert variables["AWS_BATCH_JOB_ARRAY_SIZE"] == "3"
        assert variables["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert variables["AWS_BATCH_CE_NAME"] == "batch-fanout-ce"
        assert variables["AWS_BATCH_JQ_NAME"] == "batch-fanout-queue"
        assert variables["CUSTOM"] == "from-override"
        assert Path(variables["PWD"]) == containers_dir / "testjob"
        assert Path(variables["PATH0"]) == Path(sys.executable).parent


def test_array_parent_summarises_children_and_fails_when_one_fails(
    batch: Any, submit: Submit, wait_status: WaitStatus
) -> None:
    parent_id = submit("exit-index:1:5", arrayProperties={"size": 4})
    parent = wait_status(parent_id)
    assert parent["status"] == "FAILED"
    assert parent["arrayProperties"]["size"] == 4
    summary = parent["arrayProperties"]["statusSummary"]
    assert summary["SUCCEEDED"] == 3
    assert summary["FAILED"] == 1
    assert parent["attempts"] == []
    assert "logStreamName" not in parent["container"]

    listed = {
        item["jobId"]: item
        for status in ("SUCCEEDED", "FAILED")
        for item in batch.list_jobs(arrayJobId=parent_id, jobStatus=status)["jobSummaryList"]
    }
    assert set(listed) == {f"{parent_id}:{index}" for index in range(4)}
    assert {item["arrayProperties"]["index"] for item in listed.values()} == {0, 1, 2, 3}
    assert listed[f"{parent_id}:1"]["status"] == "FAILED"
    assert listed[f"{parent_id}:1"]["container"]["exitCode"] == 5
    failed = batch.list_jobs(arrayJobId=parent_id, jobStatus="FAILED")["jobSummaryList"]
    assert [item["jobId"] for item in failed] == [f"{parent_id}:1"]
    child = wait_status(f"{parent_id}:2")
    assert child["arrayProperties"] == {"index": 2}
    assert child["container"]["logStreamName"].startswith("testjob/default/")


def test_plain_dependency_on_an_array_waits_for_every_child(
    submit: Submit, wait_status: WaitStatus, describe: Describe, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    array_id = submit(f"wait:{release}", arrayProperties={"size": 3})
    dependent = submit("print:after", dependsOn=[{"jobId": array_id}])
    wait_status(f"{array_id}:0", ("RUNNING",))
    assert describe(dependent)["status"] == "PENDING"
    release.touch()
    array = wait_status(array_id)
    after = wait_status(dependent)
    assert after["status"] == "SUCCEEDED"
    assert after["startedAt"] >= array["stoppedAt"]


def test_n_to_n_children_run_as_their_own_index_finishes(
    submit: Submit, wait_status: WaitStatus, describe: Describe, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    # Child 0 of the upstream array finishes at once; children 1 and 2 wait for the gate.
    upstream = submit("exit-index:0:0", f"wait:{gate}", arrayProperties={"size": 3})
    downstream = submit(
        "print:ok", arrayProperties={"size": 3}, dependsOn=[{"jobId": upstream, "type": "N_TO_N"}]
    )
    first = wait_status(f"{downstream}:0")
    assert first["status"] == "SUCCEEDED"
    assert describe(f"{upstream}:1")["status"] == "RUNNING"
    assert describe(f"{downstream}:1")["status"] == "PENDING"
    assert describe(f"{downstream}:2")["status"] == "PENDING"
    gate.touch()
    assert wait_status(downstream)["status"] == "SUCCEEDED"


def test_n_to_n_on_a_plain_job_makes_every_child_wait_for_it(
    submit: Submit, wait_status: WaitStatus, describe: Describe, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    leader = submit(f"wait:{release}")
    follower = submit(
        "print:follow", arrayProperties={"size": 3}, dependsOn=[{"jobId": leader, "type": "N_TO_N"}]
    )
    wait_status(leader, ("RUNNING",))
    assert describe(follower)["arrayProperties"]["statusSummary"]["PENDING"] == 3
    release.touch()
    led = wait_status(leader)
    for index in range(3):
        assert wait_status(f"{follower}:{index}")["startedAt"] >= led["stoppedAt"]


def test_sequential_children_run_in_index_order_and_stop_at_a_failure(
    submit: Submit, wait_status: WaitStatus, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    ordered = submit(f"append:{record}", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])
    assert wait_status(ordered)["status"] == "SUCCEEDED"
    rows = [line.split() for line in record.read_text().splitlines()]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    for previous, current in itertools.pairwise(rows):
        assert int(current[1]) >= int(previous[2])

    broken = submit("exit-index:1:4", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])
    assert wait_status(broken)["status"] == "FAILED"
    assert wait_status(f"{broken}:0")["status"] == "SUCCEEDED"
    assert wait_status(f"{broken}:1")["container"]["exitCode"] == 4
    for index in (2, 3):
        child = wait_status(f"{broken}:{index}")
        assert child["status"] == "FAILED"
        assert child["statusReason"].startswith("Dependent Job failed")
        assert child["attempts"] == []


def test_a_failed_dependency_fails_its_dependents_and_theirs(submit: Submit, wait_status: WaitStatus) -> None:
    first = submit("exit:1")
    second = submit("print:never", dependsOn=[{"jobId": first}])
    third = submit(
        "print:never", arrayProperties={"size": 2}, dependsOn=[{"jobId": second, "type": "N_TO_N"}]
    )
    assert wait_status(first)["status"] == "FAILED"
    failed = wait_status(second)
    assert failed["status"] == "FAILED"
    assert failed["statusReason"] == f"Dependent Job failed: {first} did not succeed"
    assert failed["attempts"] == []
    last = wait_status(third)
    assert last["status"] == "FAILED"
    assert last["arrayProperties"]["statusSummary"]["FAILED"] == 2


def test_array_size_and_index_of_a_ten_thousand_child_array(batch: Any, submit: Submit, until: Until) -> None:
    # A 10,000-child array is accepted and listed; cancelled at once so that nothing runs.
    gate = submit("spin", name="gate")
    big = submit("print:x", arrayProperties={"size": 10_000}, dependsOn=[{"jobId": gate}])
    batch.cancel_job(jobId=big, reason="test over")
    batch.terminate_job(jobId=gate, reason="test over")
    listed = 0
    token = None
    while True:
        kwargs: dict[str, Any] = {"arrayJobId": big, "jobStatus": "FAILED", "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = batch.list_jobs(**kwargs)
        listed += len(page["jobSummaryList"])
        token = page.get("nextToken")
        if not token:
            break
    assert listed == 10_000
    parent = batch.describe_jobs(jobs=[big])["jobs"][0]
    assert parent["arrayProperties"]["size"] == 10_000
    assert parent["status"] == "FAILED"
    assert parent["statusReason"].startswith("Array Child Job failed")
