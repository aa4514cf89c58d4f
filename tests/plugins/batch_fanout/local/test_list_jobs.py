"""ListJobs as AWS documents it: newest first, case-insensitive JOB_NAME, one filter, RUNNING by default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

QUEUE = "batch-fanout-queue"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
Submit = Callable[..., str]
WaitStatus = Callable[..., dict[str, Any]]


def register_test_definition(batch: Any, name: str) -> str:
    return str(
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": IMAGE, "command": ["python", "testjob.py", "print:listed"]},
        )["jobDefinitionArn"]
    )


def _ids(batch: Any, **request: Any) -> list[str]:
    return [item["jobId"] for item in batch.list_jobs(jobQueue=QUEUE, **request)["jobSummaryList"]]


def _by_name(value: str) -> dict[str, Any]:
    return {"filters": [{"name": "JOB_NAME", "values": [value]}]}


def test_job_name_filter_is_case_insensitive_with_a_prefix_form_and_lists_newest_first(
    batch: Any, submit: Submit, wait_status: WaitStatus
) -> None:
    first = submit(name="Listing1")
    second = submit(name="listing10")
    third = submit(name="LISTING2")
    for job_id in (first, second, third):
        wait_status(job_id)
    assert _ids(batch, **_by_name("listing1*")) == [second, first]
    assert _ids(batch, **_by_name("LISTING*")) == [third, second, first]
    assert _ids(batch, **_by_name("listing1")) == [first]
    # A filter lists every state, whatever jobStatus says (AWS's rule).
    assert _ids(batch, jobStatus="RUNNING", **_by_name("listing2")) == [third]


def test_one_filter_at_a_time_and_running_by_default(
    batch: Any, submit: Submit, wait_status: WaitStatus, tmp_path: Path
) -> None:
    with pytest.raises(ClientError, match="one filter at a time"):
        batch.list_jobs(
            jobQueue=QUEUE,
            filters=[
                {"name": "JOB_NAME", "values": ["a"]},
                {"name": "JOB_DEFINITION", "values": ["testjob"]},
            ],
        )
    with pytest.raises(ClientError, match="Invalid ListJobs filter name 'JOB_COLOR'"):
        batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_COLOR", "values": ["red"]}])
    release = tmp_path / "release"
    running = submit(f"wait:{release}", name="default-status")
    wait_status(running, ("RUNNING",))
    try:
        assert running in _ids(batch)
        assert running not in _ids(batch, jobStatus="SUCCEEDED")
    finally:
        release.touch()
    wait_status(running)
    assert running not in _ids(batch)
    assert running in _ids(batch, jobStatus="SUCCEEDED")


def test_job_definition_filter_by_name_prefix_and_arn(
    batch: Any, submit: Submit, wait_status: WaitStatus
) -> None:
    old = register_test_definition(batch, "listed-definition")
    new = register_test_definition(batch, "listed-definition")
    with_old = submit(name="by-definition", jobDefinition=old)
    with_new = submit(name="by-definition", jobDefinition=new)
    wait_status(with_old)
    wait_status(with_new)

    def listed(value: str) -> list[str]:
        return _ids(batch, filters=[{"name": "JOB_DEFINITION", "values": [value]}])

    assert listed("listed-definition") == [with_new, with_old]
    assert listed("listed-def*") == [with_new, with_old]
    assert listed(old) == [with_old]
    assert listed("Listed-definition") == []  # case-sensitive, unlike JOB_NAME
    with pytest.raises(ClientError, match=r"\* is not supported with an ARN"):
        listed(old + "*")


def test_share_identifier_filter_combines_with_job_status(
    batch: Any, submit: Submit, wait_status: WaitStatus
) -> None:
    # shareIdentifier needs a fair-share queue (AWS refuses it on a FIFO one).
    policy = batch.create_scheduling_policy(name="listing-shares")["arn"]
    queue = batch.create_job_queue(
        jobQueueName="listing-shares",
        priority=1,
        schedulingPolicyArn=policy,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "batch-fanout-ce"}],
    )["jobQueueName"]
    ok = submit(name="shared", shareIdentifier="teamA", jobQueue=queue)
    failed = submit("exit:3", name="shared", shareIdentifier="teamA", jobQueue=queue)
    other = submit(name="shared", shareIdentifier="teamB", jobQueue=queue)
    for job_id in (ok, failed, other):
        wait_status(job_id)
    share = {"filters": [{"name": "SHARE_IDENTIFIER", "values": ["teamA"]}]}

    def listed(**request: Any) -> list[str]:
        return [item["jobId"] for item in batch.list_jobs(jobQueue=queue, **request)["jobSummaryList"]]

    assert listed(**share) == [failed, ok]
    assert listed(jobStatus="FAILED", **share) == [failed]


def test_filters_do_not_apply_to_the_children_of_an_array(
    batch: Any, submit: Submit, wait_status: WaitStatus
) -> None:
    """The API reference: "The filter doesn't apply to child jobs in an array". The children are
    listed by jobStatus (RUNNING when none is given), and the filter is still checked."""
    parent = submit("exit-index:1:3", name="filtered-array", arrayProperties={"size": 3})
    assert wait_status(parent)["status"] == "FAILED"
    no_match = _by_name("no-job-has-this-name")

    def children(**request: Any) -> list[str]:
        return [item["jobId"] for item in batch.list_jobs(arrayJobId=parent, **request)["jobSummaryList"]]

    assert children(jobStatus="SUCCEEDED", **no_match) == [f"{parent}:0", f"{parent}:2"]
    assert children(jobStatus="FAILED", **no_match) == [f"{parent}:1"]
    assert children(**no_match) == []  # RUNNING by default: they have all finished
    # In the queue, the same filter matches nothing, and the children are never listed there.
    assert _ids(batch, **no_match) == []
    assert _ids(batch, **_by_name("filtered-array")) == [parent]
    with pytest.raises(ClientError, match="Invalid ListJobs filter name"):
        batch.list_jobs(arrayJobId=parent, filters=[{"name": "JOB_COLOR", "values": ["red"]}])
