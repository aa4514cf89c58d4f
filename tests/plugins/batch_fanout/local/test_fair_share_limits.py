"""AWS's fair-share limit that SubmitJob enforces: no more than 500 share identifiers active in a job
queue (shares of its jobs that have not finished), over HTTP with boto3, across a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import running_endpoint

from .conftest import CONTAINERS_DIR, register_test_definition

Until = Callable[..., Any]
LIMIT = 500


def _refusal(call: Callable[[], Any]) -> str:
    """The message of the ClientException (HTTP 400) that ``call`` gets."""
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ClientException",
        400,
    )
    return str(response["Error"]["Message"])


def _setup(batch: Any) -> str:
    """Two fair-share queues on a 1-vCPU environment, and a definition of 2 vCPUs: its jobs stay
    RUNNABLE (they can never fit), so their shares stay active. Returns the definition's ARN."""
    policy = batch.create_scheduling_policy(name="limits", fairsharePolicy={})["arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="limits-ce",
        type="MANAGED",
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 1, "subnets": []},
    )["computeEnvironmentArn"]
    for name in ("limits", "limits-other"):
        batch.create_job_queue(
            jobQueueName=name,
            priority=1,
            schedulingPolicyArn=policy,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )
    return register_test_definition(
        batch, "limits", containerProperties={"resourceRequirements": [{"type": "VCPU", "value": "2"}]}
    )


def test_at_most_500_share_identifiers_are_active_in_a_queue(tmp_path: Path, until: Until) -> None:
    data_dir = tmp_path / "data"

    def submitter(batch: Any, definition: str) -> Callable[..., str]:
        def submit(share: str, queue: str = "limits", **extra: Any) -> str:
            return str(
                batch.submit_job(
                    jobName=f"share-{share}",
                    jobQueue=queue,
                    jobDefinition=definition,
                    shareIdentifier=share,
                    **extra,
                )["jobId"]
            )

        return submit

    with running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, vcpus=1) as handle:
        batch = handle.client("batch")
        definition = _setup(batch)
        submit = submitter(batch, definition)
        # An array job is one share, whatever its size.
        ids = [submit("s000", arrayProperties={"size": 3})]
        ids += [submit(f"s{number:03}") for number in range(1, LIMIT)]
        message = _refusal(lambda: submit("s500"))
        assert "Job queue limits already has 500 active share identifiers" in message
        assert "no more than 500 share identifiers active in a job queue" in message
        assert "'s500'" in message
        assert submit("s001")  # a share already active takes more jobs
        assert submit("s500", queue="limits-other")  # the limit is per queue
        # A share whose every job has finished is no longer active: its place can be taken.
        batch.cancel_job(jobId=ids[2], reason="make room")
        until(lambda: batch.describe_jobs(jobs=[ids[2]])["jobs"][0]["status"] == "FAILED", what="FAILED")
        assert submit("s500")
        assert "'s501'" in _refusal(lambda: submit("s501"))
    # After a restart the queue's jobs are read back, and their shares count again.
    with running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, vcpus=1) as handle:
        batch = handle.client("batch")
        submit = submitter(batch, definition)
        assert "already has 500 active share identifiers" in _refusal(lambda: submit("s502"))
        assert "'s002'" in _refusal(lambda: submit("s002"))  # its one job finished before the restart
        assert submit("s001")
