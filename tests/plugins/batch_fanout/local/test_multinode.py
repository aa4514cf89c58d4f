"""Multi-node parallel jobs on the local endpoint, through boto3: AWS's validation, nodes that talk to
their main node, the job's status from the main node, retries, terminate, cancel and gang placement."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import QUEUE, TEST_IMAGE, attempt_journal, create_queue, endpoint_in, job_statuses

Describe = Callable[[str], dict[str, Any]]
WaitStatus = Callable[..., dict[str, Any]]
ReadLog = Callable[[str], list[str]]
Until = Callable[..., Any]

MAIN_EXITED = "Stopped: the job's main node exited"


def container(*steps: str, vcpus: int = 1) -> dict[str, Any]:
    return {
        "image": TEST_IMAGE,
        "command": ["python", "testjob.py", *steps],
        "resourceRequirements": [{"type": "VCPU", "value": str(vcpus)}, {"type": "MEMORY", "value": "128"}],
    }


def register(
    batch: Any, name: str, num_nodes: int, ranges: list[tuple[str, dict[str, Any]]], **extra: Any
) -> str:
    """Register a multinode definition with main node 0; returns its ARN."""
    response = batch.register_job_definition(
        jobDefinitionName=name,
        type="multinode",
        nodeProperties={
            "numNodes": num_nodes,
            "mainNode": extra.pop("mainNode", 0),
            "nodeRangeProperties": [{"targetNodes": target, "container": body} for target, body in ranges],
        },
        **extra,
    )
    return str(response["jobDefinitionArn"])


def register_main_and_others(
    batch: Any, name: str, main: tuple[str, ...], others: tuple[str, ...], num_nodes: int = 2
) -> str:
    """Register a multinode definition whose main node 0 runs the ``main`` steps and whose other nodes
    (``1:``) run the ``others`` steps; returns its ARN."""
    return register(batch, name, num_nodes, [("0:0", container(*main)), ("1:", container(*others))])


def wait_every_node_running(describe: Describe, until: Until, job_id: str, num_nodes: int) -> None:
    until(
        lambda: all(describe(f"{job_id}#{index}")["status"] == "RUNNING" for index in range(num_nodes)),
        what="every node to run",
    )


def submit(batch: Any, definition: str, name: str = "mnp", **extra: Any) -> str:
    return str(batch.submit_job(jobName=name, jobQueue=QUEUE, jobDefinition=definition, **extra)["jobId"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_error_message(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == "ClientException"
    return str(raised.value.response["Error"]["Message"])


# ---- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_nodes", "main_node", "targets", "message"),
    [
        (3, 0, ["0:0", "2:"], "node 1 of 0:2 is in no range"),
        (4, 0, ["0:2", "1:3"], "overlap"),
        (3, 0, [":", ":"], "overlap"),
        (3, 3, [":"], "mainNode 3 must be a node index below numNodes 3"),
        (3, 0, ["0:5"], "the job has 3 nodes"),
        (3, 0, ["2:1", ":"], "Invalid nodeRangeProperties[0].targetNodes '2:1'"),
        (3, 0, ["one:two"], "give a range of node indices"),
        (3, 0, ["0:0", "1:1", "2:2", "0:2", "1:2", "0:1"], "1 to 5 node ranges"),
        (1001, 0, [":"], "numNodes must be between 1 and 1000"),
    ],
)
def test_register_rejects_what_aws_rejects(
    batch: Any, num_nodes: int, main_node: int, targets: list[str], message: str
) -> None:
    ranges = [(target, container("print:x")) for target in targets]
    assert message in client_error_message(
        lambda: register(batch, "bad-mnp", num_nodes, ranges, mainNode=main_node)
    )


def test_register_rejects_mixed_or_fargate_definitions(batch: Any) -> None:
    properties = {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [{"targetNodes": ":", "container": container()}],
    }
    assert "not containerProperties" in client_error_message(
        lambda: batch.register_job_definition(
            jobDefinitionName="bad",
            type="multinode",
            nodeProperties=properties,
            containerProperties=container(),
        )
    )
    assert "cannot run on FARGATE" in client_error_message(
        lambda: batch.register_job_definition(
            jobDefinitionName="bad",
            type="multinode",
            nodeProperties=properties,
            platformCapabilities=["FARGATE"],
        )
    )
    assert "nodeProperties needs type multinode" in client_error_message(
        lambda: batch.register_job_definition(
            jobDefinitionName="bad",
            type="container",
            nodeProperties=properties,
            containerProperties=container(),
        )
    )
    with_gpu = {**container(), "resourceRequirements": [{"type": "GPU", "value": "1"}]}
    gpu_properties = {**properties, "nodeRangeProperties": [{"targetNodes": ":", "container": with_gpu}]}
    assert "GPUs or consumable resources are not supported" in client_error_message(
        lambda: batch.register_job_definition(
            jobDefinitionName="bad", type="multinode", nodeProperties=gpu_properties
        )
    )
    assert "nodeProperties is required" in client_error_message(
        lambda: batch.register_job_definition(jobDefinitionName="bad", type="multinode")
    )


def test_nested_ranges_register_and_the_narrower_one_wins(
    batch: Any, wait_status: WaitStatus, read_log: ReadLog, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    definition = register(
        batch,
        "nested",
        3,
        [("0:2", container("print:wide", f"wait:{release}")), ("1:1", container("print:narrow"))],
    )
    described = batch.describe_job_definitions(jobDefinitions=[definition])["jobDefinitions"][0]
    assert described["type"] == "multinode"
    assert described["nodeProperties"]["numNodes"] == 3
    assert "containerProperties" not in described
    job_id = submit(batch, definition)
    assert wait_status(f"{job_id}#1")["status"] == "SUCCEEDED"  # before the main node ends and stops it
    release.touch()
    assert wait_status(job_id)["status"] == "SUCCEEDED"
    logs = {
        index: read_log(wait_status(f"{job_id}#{index}")["container"]["logStreamName"]) for index in (0, 1)
    }
    assert logs == {0: ["wide"], 1: ["narrow"]}


def test_submit_rejects_what_aws_rejects(batch: Any, definition: str) -> None:
    mnp = register_main_and_others(batch, "open-mnp", ("print:main",), ("print:node",))
    fixed = register(batch, "fixed-mnp", 2, [("0:0", container()), ("1:1", container())])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"jobDefinition": mnp, "arrayProperties": {"size": 2}}, "cannot be an array job"),
        ({"jobDefinition": mnp, "containerOverrides": {"command": ["x"]}}, "nodePropertyOverrides"),
        ({"jobDefinition": definition, "nodeOverrides": {"numNodes": 2}}, "multi-node parallel jobs only"),
        (
            {"jobDefinition": mnp, "nodeOverrides": {"nodePropertyOverrides": [{"targetNodes": "0:1"}]}},
            "NodeOverride targets should match job definition. Non matching targets - 0:1",
        ),
        ({"jobDefinition": fixed, "nodeOverrides": {"numNodes": 3}}, "open upper bound"),
        ({"jobDefinition": mnp, "nodeOverrides": {"numNodes": 1}}, "the job has 1 nodes"),
        (
            {
                "jobDefinition": mnp,
                "nodeOverrides": {
                    "nodePropertyOverrides": [
                        {
                            "targetNodes": "1:",
                            "containerOverrides": {"resourceRequirements": [{"type": "GPU", "value": "1"}]},
                        }
                    ]
                },
            },
            "GPUs or consumable resources are not supported",
        ),
    ]
    for extra, message in cases:
        assert message in client_error_message(
            functools.partial(batch.submit_job, jobName="bad", jobQueue=QUEUE, **extra)
        ), extra


# ---- running -----------------------------------------------------------------------------------


def test_nodes_talk_to_their_main_node(  # noqa: PLR0917 - pytest fixtures
    batch: Any, describe: Describe, wait_status: WaitStatus, read_log: ReadLog, tmp_path: Path, until: Until
) -> None:
    port, record, release = free_port(), tmp_path / "hellos.txt", tmp_path / "release"
    definition = register_main_and_others(
        batch,
        "talk",
        main=("env", f"serve:{port}:{record}", f"wait:{release}"),
        others=("env", f"hello:{port}"),
        num_nodes=3,
    )
    job_id = submit(batch, definition, name="talk", timeout={"attemptDurationSeconds": 600})
    # The other nodes end on their own while the main node waits (it would stop them when it ends).
    assert [wait_status(f"{job_id}#{index}")["status"] for index in (1, 2)] == ["SUCCEEDED", "SUCCEEDED"]
    assert describe(job_id)["status"] == "RUNNING"
    release.touch()
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert record.read_text() == "hello from node 1\nhello from node 2\n"
    assert "container" not in job
    assert job["nodeProperties"]["numNodes"] == 3 and job["nodeProperties"]["mainNode"] == 0
    assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [0]
    nodes = [describe(f"{job_id}#{index}") for index in range(3)]
    assert [node["nodeDetails"] for node in nodes] == [
        {"nodeIndex": 0, "isMainNode": True},
        {"nodeIndex": 1, "isMainNode": False},
        {"nodeIndex": 2, "isMainNode": False},
    ]
    assert all(node["status"] == "SUCCEEDED" and node["container"]["exitCode"] == 0 for node in nodes)
    assert len({node["container"]["logStreamName"] for node in nodes}) == 3
    # The timeout is the whole job's: the main node's attempt carries it, whose end ends the job.
    assert [node.get("timeout") for node in nodes] == [{"attemptDurationSeconds": 600}, None, None]
    environments = [json.loads(read_log(node["container"]["logStreamName"])[0]) for node in nodes]
    for index, variables in enumerate(environments):
        assert variables["AWS_BATCH_JOB_ID"] == f"{job_id}#{index}"
        assert variables["AWS_BATCH_JOB_NODE_INDEX"] == str(index)
        assert variables["AWS_BATCH_JOB_NUM_NODES"] == "3"
        assert variables["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
        assert "AWS_BATCH_JOB_ARRAY_INDEX" not in variables
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in environments[0]
    assert {variables["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] for variables in environments[1:]} == {
        "127.0.0.1"
    }
    assert read_log(nodes[1]["container"]["logStreamName"])[-1] == "main node answered: welcome"
    # The main node starts first; the others once it runs.
    assert all(node["startedAt"] >= nodes[0]["startedAt"] for node in nodes[1:])
    listed = batch.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [item["jobId"] for item in listed] == [f"{job_id}#{index}" for index in range(3)]
    assert listed[0]["nodeProperties"] == {"isMainNode": True, "numNodes": 3, "nodeIndex": 0}
    in_queue = batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["talk"]}])[
        "jobSummaryList"
    ]
    assert [item["jobId"] for item in in_queue] == [job_id]
    assert in_queue[0]["nodeProperties"] == {"numNodes": 3}


def test_the_main_node_can_be_any_node(
    batch: Any, describe: Describe, wait_status: WaitStatus, tmp_path: Path
) -> None:
    port, record = free_port(), tmp_path / "hellos.txt"
    definition = register(
        batch,
        "main-last",
        3,
        [("0:1", container(f"hello:{port}")), ("2:2", container(f"serve:{port}:{record}"))],
        mainNode=2,
    )
    job_id = submit(batch, definition)
    assert wait_status(job_id)["status"] == "SUCCEEDED"
    assert record.read_text() == "hello from node 0\nhello from node 1\n"
    assert describe(f"{job_id}#2")["nodeDetails"] == {"nodeIndex": 2, "isMainNode": True}
    assert describe(job_id)["nodeProperties"]["mainNode"] == 2


def test_the_job_ends_with_its_main_node_and_the_others_are_stopped(
    batch: Any, describe: Describe, wait_status: WaitStatus, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    definition = register_main_and_others(
        batch, "main-exits", (f"wait:{started}", "exit:5"), ("trap-sigterm", f"touch:{started}", "spin")
    )
    job_id = submit(batch, definition)
    job = wait_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Essential container in task exited"
    assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [5]
    other = wait_status(f"{job_id}#1")
    assert other["status"] == "FAILED"
    assert other["statusReason"] == MAIN_EXITED
    assert other["container"]["exitCode"] == 143  # it got SIGTERM
    assert describe(f"{job_id}#0")["container"]["exitCode"] == 5


def test_another_node_failing_leaves_the_job_running(
    batch: Any, describe: Describe, wait_status: WaitStatus, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    definition = register_main_and_others(batch, "node-fails", (f"wait:{release}",), ("exit:7",))
    job_id = submit(batch, definition)
    failed = wait_status(f"{job_id}#1")
    assert failed["status"] == "FAILED" and failed["container"]["exitCode"] == 7
    assert describe(job_id)["status"] == "RUNNING"
    release.touch()
    assert wait_status(job_id)["status"] == "SUCCEEDED"


def test_retries_apply_to_the_whole_job(
    batch: Any, describe: Describe, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    definition = register_main_and_others(batch, "retried", ("fail-until-attempt:2",), ("print:node",))
    job_id = submit(batch, definition, retryStrategy={"attempts": 3})
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [3, 0]
    assert describe(f"{job_id}#0")["status"] == "SUCCEEDED"
    # Each attempt of the job is an attempt of every node (node 1 may have ended on its own or been
    # stopped by its main node's exit: either way, one attempt each time).
    assert [len(wait_status(f"{job_id}#{index}")["attempts"]) for index in (0, 1)] == [2, 2]
    assert read_log(describe(f"{job_id}#0")["attempts"][0]["container"]["logStreamName"]) == [
        "failing attempt 1"
    ]


def test_a_retry_waits_until_every_node_of_the_failed_attempt_has_ended(
    batch: Any, describe: Describe, wait_status: WaitStatus, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    definition = register_main_and_others(
        batch,
        "retry-running",
        (f"wait:{ready}", "fail-until-attempt:2"),
        ("trap-sigterm", f"touch:{ready}", "spin"),
    )
    job_id = submit(batch, definition, retryStrategy={"attempts": 2})
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [3, 0]
    # Node 1 ran in the first attempt and was stopped when the main node failed, before the retry.
    first = wait_status(f"{job_id}#1")["attempts"][0]
    assert first["container"]["exitCode"] == 143
    assert first["statusReason"] == MAIN_EXITED
    assert first["stoppedAt"] <= job["attempts"][1]["startedAt"]


@pytest.mark.slow
def test_the_timeout_is_the_whole_jobs_and_is_not_retried(batch: Any, wait_status: WaitStatus) -> None:
    # 60 s is AWS's (and the endpoint's) shortest timeout, so this test takes a minute.
    definition = register(batch, "timed-out", 2, [(":", container("trap-sigterm", "spin"))])
    job_id = submit(batch, definition, timeout={"attemptDurationSeconds": 60}, retryStrategy={"attempts": 2})
    job = wait_status(job_id, timeout=120)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(job["attempts"]) == 1
    other = wait_status(f"{job_id}#1")
    assert other["statusReason"] == MAIN_EXITED and len(other["attempts"]) == 1


def test_node_overrides_change_the_nodes(
    batch: Any, wait_status: WaitStatus, read_log: ReadLog, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    definition = register_main_and_others(
        batch, "override", ("print:main", f"wait:{release}"), ("print:node",)
    )
    job_id = submit(
        batch,
        definition,
        nodeOverrides={
            "numNodes": 4,
            "nodePropertyOverrides": [
                {"targetNodes": "1:", "containerOverrides": {"command": ["python", "testjob.py", "env"]}}
            ],
        },
    )
    assert [wait_status(f"{job_id}#{index}")["status"] for index in (1, 2, 3)] == ["SUCCEEDED"] * 3
    release.touch()
    assert wait_status(job_id)["status"] == "SUCCEEDED"
    assert read_log(wait_status(f"{job_id}#0")["container"]["logStreamName"]) == ["main"]
    for index in (1, 2, 3):
        variables = json.loads(read_log(wait_status(f"{job_id}#{index}")["container"]["logStreamName"])[0])
        assert variables["AWS_BATCH_JOB_NUM_NODES"] == "4"
        assert variables["AWS_BATCH_JOB_NODE_INDEX"] == str(index)


def test_terminate_reaches_every_node(
    batch: Any, describe: Describe, wait_status: WaitStatus, until: Until
) -> None:
    definition = register(batch, "terminated", 3, [(":", container("trap-sigterm", "spin"))])
    job_id = submit(batch, definition)
    wait_every_node_running(describe, until, job_id, 3)
    batch.terminate_job(jobId=job_id, reason="enough")
    job = wait_status(job_id)
    assert job["status"] == "FAILED" and job["statusReason"] == "enough" and job["isTerminated"] is True
    for index in range(3):
        node = wait_status(f"{job_id}#{index}")
        assert node["status"] == "FAILED"
        assert node["container"]["exitCode"] == 143


def test_terminating_a_started_node_stops_that_node_alone(
    batch: Any, describe: Describe, wait_status: WaitStatus, until: Until
) -> None:
    definition = register(batch, "terminate-node", 3, [(":", container("trap-sigterm", "spin"))])
    job_id = submit(batch, definition)
    wait_every_node_running(describe, until, job_id, 3)
    batch.terminate_job(jobId=f"{job_id}#2", reason="one less")
    stopped = wait_status(f"{job_id}#2")
    assert stopped["status"] == "FAILED" and stopped["statusReason"] == "one less"
    assert [describe(ident)["status"] for ident in (job_id, f"{job_id}#0", f"{job_id}#1")] == ["RUNNING"] * 3
    batch.terminate_job(jobId=f"{job_id}#0", reason="main node terminated")
    job = wait_status(job_id)
    assert job["status"] == "FAILED" and job["statusReason"] == "main node terminated"
    other = wait_status(f"{job_id}#1")
    assert other["status"] == "FAILED" and other["statusReason"] == MAIN_EXITED


def test_gang_placement_waits_for_room_for_every_node(
    batch: Any, describe: Describe, wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    blocker = batch.register_job_definition(
        jobDefinitionName="blocker",
        type="container",
        containerProperties=container(f"wait:{release}", vcpus=1),
    )["jobDefinitionArn"]
    blocking = submit(batch, blocker, name="blocking")
    wait_status(blocking, ("RUNNING",))
    # Two nodes of 4 vCPUs need the whole 8-vCPU environment: one is not started without the other.
    definition = register(batch, "gang", 2, [(":", container("print:ran", vcpus=4))])
    job_id = submit(batch, definition, dependsOn=[])
    follower = submit(batch, blocker, name="after-mnp", dependsOn=[{"jobId": job_id}])
    until(lambda: describe(job_id)["status"] == "RUNNABLE", what="the job to wait for capacity")
    assert [describe(f"{job_id}#{index}")["status"] for index in (0, 1)] == ["SUBMITTED", "SUBMITTED"]
    release.touch()
    assert wait_status(job_id)["status"] == "SUCCEEDED"
    assert wait_status(follower)["status"] == "SUCCEEDED"  # a dependency on it works as on any job
    assert wait_status(blocking)["status"] == "SUCCEEDED"


@pytest.mark.parametrize("target", ["", "#1"])
def test_cancel_fails_a_waiting_job_and_its_nodes(batch: Any, wait_status: WaitStatus, target: str) -> None:
    # Three nodes of 4 vCPUs never fit in 8 vCPUs: the job stays RUNNABLE until cancelled (given its id
    # or the id of one of its nodes, which waits with it).
    definition = register(batch, "too-big", 3, [(":", container("print:never", vcpus=4))])
    job_id = submit(batch, definition)
    wait_status(job_id, ("RUNNABLE",))
    batch.cancel_job(jobId=job_id + target, reason="no room")
    job = wait_status(job_id)
    assert job["status"] == "FAILED" and job["statusReason"] == "no room" and job["isCancelled"] is True
    for index in range(3):
        node = wait_status(f"{job_id}#{index}")
        assert node["status"] == "FAILED" and node["attempts"] == []


def test_a_main_node_that_ends_while_the_endpoint_is_down_ends_the_job_after_a_restart(
    tmp_path: Path, until: Until
) -> None:
    data_dir, release, ready = tmp_path / "data", tmp_path / "release", tmp_path / "ready"
    with endpoint_in(data_dir, vcpus=4) as handle:
        batch = handle.client("batch")
        definition = register_main_and_others(
            batch, "restart", (f"wait:{release}",), ("trap-sigterm", f"touch:{ready}", "spin")
        )
        job_id = submit(batch, definition)
        until(ready.exists, what="the other node to run")
        main_stream = batch.describe_jobs(jobs=[f"{job_id}#0"])["jobs"][0]["container"]["logStreamName"]
        handle.kill()
    # The main node ends while the endpoint is down; its supervisor records it.
    release.touch()
    attempt_id = main_stream.rsplit("/", 1)[-1]
    until(
        lambda: "status" in attempt_journal(data_dir).get(attempt_id, {}), what="the main node's recorded end"
    )
    with endpoint_in(data_dir, vcpus=4) as restarted:
        batch = restarted.client("batch")
        until(
            lambda: job_statuses(batch, f"{job_id}#1") == {f"{job_id}#1": "FAILED"},
            what="the adopted node to be stopped",
        )
        job, main, other = batch.describe_jobs(jobs=[job_id, f"{job_id}#0", f"{job_id}#1"])["jobs"]
        assert job["status"] == "SUCCEEDED"
        assert [attempt["container"]["exitCode"] for attempt in job["attempts"]] == [0]
        assert main["status"] == "SUCCEEDED" and len(main["attempts"]) == 1
        assert other["statusReason"] == MAIN_EXITED and other["container"]["exitCode"] == 143
        assert len(other["attempts"]) == 1  # adopted, not interrupted and retried


@pytest.mark.slow
def test_the_amazon_providers_batch_operator_runs_a_multi_node_job(  # noqa: PLR0917 - pytest fixtures
    airflow_db: Path,
    batch_endpoint: Any,
    aws_connection: str,
    run_dag: Any,
    containers_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
    from airflow.providers.amazon.aws.operators.batch import BatchOperator
    from airflow.sdk import DAG

    # The session endpoint runs the project's images; map this test's image to the test job's folder.
    image = "local-tests/multinode/testjob:1"
    image_map = batch_endpoint.data_dir / "images.json"
    mapping = json.loads(image_map.read_text()) if image_map.exists() else {}
    mapping[image] = str(containers_dir / "testjob")
    image_map.write_text(json.dumps(mapping))
    monkeypatch.setattr(BatchClientHook, "DEFAULT_DELAY_MIN", 0)
    monkeypatch.setattr(BatchClientHook, "DEFAULT_DELAY_MAX", 1)
    batch = batch_endpoint.client("batch")
    main, other = ({**container(step), "image": image} for step in ("print:main", "print:other"))
    # Three nodes by definition, two by override: the session endpoint has the machine's vCPUs (two
    # on the project's machine), and a multi-node job runs only when every node fits at once.
    definition = register(batch, "provider-mnp", 3, [("0:0", main), ("1:", other)])
    with DAG(dag_id="local_endpoint_multinode", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        BatchOperator(
            task_id="multinode",
            job_name="provider-mnp",
            job_queue=QUEUE,
            job_definition=definition,
            node_overrides={"numNodes": 2},
            aws_conn_id=aws_connection,
            region_name="us-east-1",
            awslogs_enabled=True,
        )
    dag_run = run_dag(dag)
    assert {instance.task_id: instance.state for instance in dag_run.get_task_instances()} == {
        "multinode": "success"
    }
    [job] = batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["provider-mnp"]}])[
        "jobSummaryList"
    ]
    assert job["status"] == "SUCCEEDED" and job["nodeProperties"] == {"numNodes": 2}
    nodes = batch.list_jobs(multiNodeJobId=job["jobId"], filters=[{"name": "JOB_NAME", "values": ["*"]}])
    assert [node["nodeProperties"]["nodeIndex"] for node in nodes["jobSummaryList"]] == [0, 1]


def test_a_multi_node_job_in_a_fair_share_queue(
    batch: Any, describe: Describe, wait_status: WaitStatus
) -> None:
    policy = batch.create_scheduling_policy(
        name="mnp-share",
        fairsharePolicy={"shareDistribution": [{"shareIdentifier": "team", "weightFactor": 1}]},
    )["arn"]
    create_queue(batch, "mnp-share", 2, schedulingPolicyArn=policy)
    definition = register(batch, "shared", 2, [(":", container("print:shared"))])
    jobs = [
        str(
            batch.submit_job(
                jobName="shared", jobQueue="mnp-share", jobDefinition=definition, shareIdentifier="team"
            )["jobId"]
        )
        for _ in range(2)
    ]
    for job_id in jobs:  # each takes the whole environment in turn
        job = wait_status(job_id)
        assert job["status"] == "SUCCEEDED" and job["shareIdentifier"] == "team"
        assert "shareIdentifier" not in describe(f"{job_id}#1")
