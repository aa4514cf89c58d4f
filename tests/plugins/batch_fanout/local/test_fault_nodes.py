"""Fault rules' ``indices`` match a multi-node job's node index (``AWS_BATCH_JOB_NODE_INDEX``) as they
match an array child's index: real multi-node jobs over HTTP with boto3, whose nodes fail by the rule
and whose job then follows AWS's rules (it ends with its main node; a retry is the whole job's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.faults import INJECTED_LOG_LINE
from batch_fanout.local.testing import EndpointHandle

from .conftest import QUEUE, TEST_IMAGE

WaitStatus = Callable[..., dict[str, Any]]
ReadLog = Callable[[str], list[str]]
TASK_EXITED = "Essential container in task exited"


@pytest.fixture(autouse=True)
def _no_faults_after(endpoint: EndpointHandle) -> Iterator[None]:
    """Each test sets its own faults; none are left for the next one, whatever its outcome."""
    yield
    endpoint.faults({})


def _multinode_job(batch: Any, name: str, commands: list[list[str]], **submit: Any) -> str:
    """Submit a multi-node job of one node per command (node 0 the main node); returns its id."""
    ranges = [
        {
            "targetNodes": f"{index}:{index}",
            "container": {
                "image": TEST_IMAGE,
                "command": ["python", "testjob.py", *steps],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
            },
        }
        for index, steps in enumerate(commands)
    ]
    definition = batch.register_job_definition(
        jobDefinitionName=name,
        type="multinode",
        nodeProperties={"numNodes": len(commands), "mainNode": 0, "nodeRangeProperties": ranges},
    )["jobDefinitionArn"]
    return str(batch.submit_job(jobName=name, jobQueue=QUEUE, jobDefinition=definition, **submit)["jobId"])


def test_an_index_fails_that_node_and_the_job_follows_its_main_node(
    batch: Any,
    endpoint: EndpointHandle,
    wait_status: WaitStatus,
    read_log: ReadLog,
    tmp_path: Path,
) -> None:
    touched = tmp_path / "touched"
    endpoint.faults({"failures": [{"jobName": "fault-node", "indices": [2], "exitCode": 7}]})
    # The main node waits for node 1, which starts with node 2 (nodes other than the main one start
    # together), so the rule meets node 2 before the job can end.
    job_id = _multinode_job(
        batch, "fault-node", [[f"wait:{touched}"], [f"touch:{touched}"], ["print:node 2 ran"]]
    )
    assert wait_status(job_id)["status"] == "SUCCEEDED"  # another node failing changes nothing else
    failed = wait_status(f"{job_id}#2")
    assert failed["status"] == "FAILED"
    assert failed["container"]["exitCode"] == 7
    assert failed["statusReason"] == TASK_EXITED
    injected = INJECTED_LOG_LINE.format(what="exit code 7")
    assert read_log(failed["container"]["logStreamName"]) == [injected]  # its command never ran
    # Node 1 ran its command (the main node waited for it). It may end on its own or be stopped when
    # the main node exits: either way, not by the rule.
    assert touched.exists()


def test_the_main_nodes_index_fails_the_attempt_and_the_job_is_retried(
    batch: Any, endpoint: EndpointHandle, wait_status: WaitStatus
) -> None:
    endpoint.faults({"failures": [{"jobName": "fault-main", "indices": [0], "attempts": [1], "exitCode": 5}]})
    job_id = _multinode_job(
        batch, "fault-main", [["print:main"], ["print:node"]], retryStrategy={"attempts": 2}
    )
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [5, 0]
    assert job["attempts"][0]["statusReason"] == TASK_EXITED


def test_indices_leave_nodes_outside_them_and_jobs_without_an_index_alone(
    batch: Any,
    endpoint: EndpointHandle,
    submit: Callable[..., str],
    wait_status: WaitStatus,
    tmp_path: Path,
) -> None:
    touched = tmp_path / "touched"
    endpoint.faults({"failures": [{"jobName": "fault-none*", "indices": [5], "exitCode": 9}]})
    job_id = _multinode_job(batch, "fault-none-nodes", [[f"wait:{touched}"], [f"touch:{touched}"]])
    assert wait_status(job_id)["status"] == "SUCCEEDED"
    # Node 1 ran its command (the main node waited for it). It may end on its own or be stopped when
    # the main node exits: either way, not by the rule.
    assert touched.exists()
    endpoint.faults({"failures": [{"jobName": "fault-none*", "indices": [0], "exitCode": 9}]})
    assert wait_status(submit("print:x", name="fault-none-plain"))["status"] == "SUCCEEDED"
