"""Consumable resources (resource-aware scheduling) over HTTP with boto3: the six operations with AWS's
validation, jobs waiting RUNNABLE for them, REPLENISHABLE quantities held and returned,
NON_REPLENISHABLE ones used up, overrides at submission, and persistence across a restart."""

from __future__ import annotations

import http.client
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import EndpointHandle, running_endpoint

from .conftest import register_test_definition

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
QUEUE = "batch-fanout-queue"
WaitStatus = Callable[..., dict[str, Any]]
Until = Callable[..., Any]


def _definition(batch: Any, name: str, *needs: tuple[str, int]) -> str:
    return register_test_definition(
        batch,
        name,
        containerProperties={
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]
        },
        consumableResourceProperties={
            "consumableResourceList": [
                {"consumableResource": resource, "quantity": quantity} for resource, quantity in needs
            ]
        },
    )


def _submit(batch: Any, definition: str, *steps: str, queue: str = QUEUE, **extra: Any) -> str:
    return str(
        batch.submit_job(
            jobName=extra.pop("jobName", "needs"),
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides={"command": ["python", "testjob.py", *steps]},
            **extra,
        )["jobId"]
    )


def _quantities(batch: Any, name: str) -> tuple[int, int, int]:
    resource = batch.describe_consumable_resource(consumableResource=name)
    return resource["totalQuantity"], resource["inUseQuantity"], resource["availableQuantity"]


def _queue(batch: Any, name: str) -> str:
    # A job that waits for a resource holds up its queue (as on AWS): each test waits in a queue of its own.
    batch.create_job_queue(
        jobQueueName=name,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "batch-fanout-ce"}],
    )
    return name


def _error(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == "ClientException"
    return str(raised.value.response["Error"]["Message"])


def test_create_describe_list_update_and_delete_with_awss_checks(batch: Any) -> None:
    created = batch.create_consumable_resource(
        consumableResourceName="Licence-A", totalQuantity=4, tags={"team": "x"}
    )
    arn = created["consumableResourceArn"]
    assert arn == "arn:aws:batch:us-east-1:123456789012:consumable-resource/Licence-A"
    described = batch.describe_consumable_resource(consumableResource=arn)
    assert described["resourceType"] == "REPLENISHABLE"  # AWS's default
    assert (described["totalQuantity"], described["inUseQuantity"], described["availableQuantity"]) == (
        4,
        0,
        4,
    )
    assert described["tags"] == {"team": "x"} and described["createdAt"] > 0
    batch.tag_resource(resourceArn=arn, tags={"cost": "7"})
    batch.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"cost": "7"}
    assert batch.describe_consumable_resource(consumableResource="Licence-A")["tags"] == {"cost": "7"}
    batch.create_consumable_resource(
        consumableResourceName="licence-b", totalQuantity=1, resourceType="NON_REPLENISHABLE"
    )
    batch.create_consumable_resource(consumableResourceName="other", totalQuantity=0)

    assert "already exists" in _error(
        lambda: batch.create_consumable_resource(consumableResourceName="other", totalQuantity=1)
    )
    assert "must not be negative" in _error(
        lambda: batch.create_consumable_resource(consumableResourceName="negative", totalQuantity=-1)
    )
    assert "Invalid resourceType 'SOMETIMES'" in _error(
        lambda: batch.create_consumable_resource(consumableResourceName="odd", resourceType="SOMETIMES")
    )
    assert "Invalid consumable resource name 'no spaces'" in _error(
        lambda: batch.create_consumable_resource(consumableResourceName="no spaces")
    )
    assert "Consumable resource missing not found" in _error(
        lambda: batch.describe_consumable_resource(consumableResource="missing")
    )

    # CONSUMABLE_RESOURCE_NAME: case-insensitive, a trailing * for a prefix.
    listed = batch.list_consumable_resources(
        filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["LICENCE*"]}]
    )
    assert [item["consumableResourceName"] for item in listed["consumableResources"]] == [
        "Licence-A",
        "licence-b",
    ]
    assert listed["consumableResources"][0] == {
        "consumableResourceArn": arn,
        "consumableResourceName": "Licence-A",
        "totalQuantity": 4,
        "inUseQuantity": 0,
        "resourceType": "REPLENISHABLE",
    }
    first = batch.list_consumable_resources(maxResults=2)
    rest = batch.list_consumable_resources(maxResults=2, nextToken=first["nextToken"])
    names = [
        item["consumableResourceName"] for item in first["consumableResources"] + rest["consumableResources"]
    ]
    assert names == ["Licence-A", "licence-b", "other"] and "nextToken" not in rest
    assert "Invalid ListConsumableResources filter name 'NAME'" in _error(
        lambda: batch.list_consumable_resources(filters=[{"name": "NAME", "values": ["x"]}])
    )

    assert (
        batch.update_consumable_resource(consumableResource="other", operation="SET", quantity=5)[
            "totalQuantity"
        ]
        == 5
    )
    assert (
        batch.update_consumable_resource(consumableResource="other", operation="ADD", quantity=3)[
            "totalQuantity"
        ]
        == 8
    )
    assert (
        batch.update_consumable_resource(consumableResource="other", operation="REMOVE", quantity=6)[
            "totalQuantity"
        ]
        == 2
    )
    assert "Cannot REMOVE 3 from consumable resource other: its total quantity is 2" in _error(
        lambda: batch.update_consumable_resource(consumableResource="other", operation="REMOVE", quantity=3)
    )
    assert "Invalid operation 'MULTIPLY'" in _error(
        lambda: batch.update_consumable_resource(consumableResource="other", operation="MULTIPLY", quantity=2)
    )
    # The same request with the same clientToken changes the resource once.
    for _ in range(2):
        again = batch.update_consumable_resource(
            consumableResource="other", operation="ADD", quantity=10, clientToken="add-ten"
        )
        assert again["totalQuantity"] == 12
    assert "clientToken 'add-ten' was used with a different" in _error(
        lambda: batch.update_consumable_resource(
            consumableResource="other", operation="ADD", quantity=1, clientToken="add-ten"
        )
    )

    batch.delete_consumable_resource(consumableResource="other")
    assert "Consumable resource other not found" in _error(
        lambda: batch.describe_consumable_resource(consumableResource="other")
    )


def test_job_definitions_and_submissions_are_checked_and_overrides_merge_by_resource(
    batch: Any, wait_status: WaitStatus
) -> None:
    batch.create_consumable_resource(consumableResourceName="seats", totalQuantity=10)
    batch.create_consumable_resource(consumableResourceName="tokens", totalQuantity=10)
    assert "consumableResourceProperties: consumable resource nowhere not found" in _error(
        lambda: _definition(batch, "unknown-resource", ("nowhere", 1))
    )
    assert "quantity for seats must be 1 or more, got 0" in _error(
        lambda: _definition(batch, "zero", ("seats", 0))
    )
    assert "lists 6 consumable resources; at most 5 are allowed" in _error(
        lambda: _definition(batch, "six", *[("seats", 1)] * 6)
    )
    definition = _definition(batch, "two-needs", ("seats", 1), ("tokens", 2))
    described = batch.describe_job_definitions(jobDefinitions=[definition])["jobDefinitions"][0]
    assert described["consumableResourceProperties"]["consumableResourceList"] == [
        {"consumableResource": "seats", "quantity": 1},
        {"consumableResource": "tokens", "quantity": 2},
    ]
    assert "consumableResourcePropertiesOverride: consumable resource nowhere not found" in _error(
        lambda: _submit(
            batch,
            definition,
            "print:x",
            consumableResourcePropertiesOverride={
                "consumableResourceList": [{"consumableResource": "nowhere", "quantity": 1}]
            },
        )
    )
    seats_arn = batch.describe_consumable_resource(consumableResource="seats")["consumableResourceArn"]
    job_id = _submit(
        batch,
        definition,
        "print:x",
        consumableResourcePropertiesOverride={
            "consumableResourceList": [{"consumableResource": seats_arn, "quantity": 3}]
        },
    )
    job = wait_status(job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["consumableResourceProperties"]["consumableResourceList"] == [
        {"consumableResource": seats_arn, "quantity": 3},
        {"consumableResource": "tokens", "quantity": 2},
    ]
    listed = batch.list_jobs_by_consumable_resource(consumableResource="seats")["jobs"]
    assert [(item["jobArn"], item["quantity"], item["jobStatus"]) for item in listed] == [
        (job["jobArn"], 3, "SUCCEEDED")
    ]
    assert listed[0]["jobQueueArn"] == job["jobQueue"] and listed[0]["jobDefinitionArn"] == definition
    # Its one job has finished: nothing unfinished requires it any more.
    batch.delete_consumable_resource(consumableResource="tokens")
    assert "Consumable resource tokens not found" in _error(
        lambda: batch.list_jobs_by_consumable_resource(consumableResource="tokens")
    )
    # The definition still names it: a submission says which list holds what is gone.
    assert "consumableResourceProperties: consumable resource tokens not found" in _error(
        lambda: _submit(batch, definition, "print:x")
    )


def test_a_replenishable_resource_is_held_while_a_job_runs_and_returned_at_its_end(
    batch: Any, wait_status: WaitStatus, tmp_path: Path
) -> None:
    queue = _queue(batch, "licensed")
    batch.create_consumable_resource(consumableResourceName="licence", totalQuantity=1)
    definition = _definition(batch, "licensed", ("licence", 1))
    release = tmp_path / "release"
    first = _submit(batch, definition, f"wait:{release}", queue=queue, jobName="first")
    second = _submit(batch, definition, "print:second", queue=queue, jobName="Second")
    wait_status(first, ("RUNNING",))
    assert wait_status(second, ("RUNNABLE",))["status"] == "RUNNABLE"
    assert _quantities(batch, "licence") == (1, 1, 0)
    waiting = batch.list_jobs_by_consumable_resource(
        consumableResource="licence", filters=[{"name": "JOB_STATUS", "values": ["RUNNABLE"]}]
    )["jobs"]
    assert [item["jobName"] for item in waiting] == ["Second"]
    by_name = batch.list_jobs_by_consumable_resource(
        consumableResource="licence", filters=[{"name": "JOB_NAME", "values": ["SEC*"]}]
    )["jobs"]
    assert [item["jobName"] for item in by_name] == ["Second"]
    everything = batch.list_jobs_by_consumable_resource(consumableResource="licence")["jobs"]
    assert [item["jobName"] for item in everything] == ["Second", "first"]  # newest first
    assert "Cannot delete consumable resource licence: 2 unfinished jobs require it" in _error(
        lambda: batch.delete_consumable_resource(consumableResource="licence")
    )
    release.touch()
    done = [wait_status(job_id) for job_id in (first, second)]
    assert [job["status"] for job in done] == ["SUCCEEDED", "SUCCEEDED"]
    assert done[1]["startedAt"] >= done[0]["stoppedAt"]
    assert _quantities(batch, "licence") == (1, 0, 1)


def test_a_non_replenishable_resource_is_used_up_until_it_is_added_to(
    batch: Any, wait_status: WaitStatus
) -> None:
    queue = _queue(batch, "metered")
    batch.create_consumable_resource(
        consumableResourceName="api-calls", totalQuantity=2, resourceType="NON_REPLENISHABLE"
    )
    definition = _definition(batch, "metered", ("api-calls", 1))
    array_id = str(
        batch.submit_job(
            jobName="metered", jobQueue=queue, jobDefinition=definition, arrayProperties={"size": 3}
        )["jobId"]
    )
    children = [f"{array_id}:{index}" for index in range(3)]
    assert [wait_status(child)["status"] for child in children[:2]] == ["SUCCEEDED", "SUCCEEDED"]
    assert wait_status(children[2], ("RUNNABLE",))["status"] == "RUNNABLE"
    assert _quantities(batch, "api-calls") == (0, 0, 0)  # subtracted from the total, never given back
    listed = batch.list_jobs_by_consumable_resource(consumableResource="api-calls")["jobs"]
    assert [item["jobArn"].rsplit("/", 1)[-1] for item in listed] == children
    batch.update_consumable_resource(consumableResource="api-calls", operation="ADD", quantity=1)
    assert wait_status(children[2])["status"] == "SUCCEEDED"
    assert wait_status(array_id)["status"] == "SUCCEEDED"
    assert _quantities(batch, "api-calls") == (0, 0, 0)


def test_resources_and_what_running_jobs_hold_survive_a_restart(
    tmp_path: Path,
    containers_dir: Path,
    statuses: Callable[..., dict[str, str]],
    held_then_released: Callable[..., None],
    until: Until,
) -> None:
    data_dir = tmp_path / "data"
    release = tmp_path / "release"
    with running_endpoint(data_dir, containers_dir=containers_dir, vcpus=4) as handle:
        batch = handle.client("batch")
        batch.create_consumable_resource(consumableResourceName="seat", totalQuantity=1)
        batch.create_consumable_resource(
            consumableResourceName="credits", totalQuantity=5, resourceType="NON_REPLENISHABLE"
        )
        definition = _definition(batch, "seated", ("seat", 1), ("credits", 2))
        holder = _submit(batch, definition, f"wait:{release}")
        until(lambda: statuses(batch, holder) == {holder: "RUNNING"}, what="holder runs")
        handle.kill()
    with running_endpoint(data_dir, containers_dir=containers_dir, vcpus=4) as restarted:
        batch = restarted.client("batch")
        assert _quantities(batch, "seat") == (1, 1, 0)
        assert _quantities(batch, "credits") == (3, 2, 3)
        waiting = _submit(batch, definition, "print:next")
        held_then_released(batch, holder, waiting, release, held="the seat still held")
        assert _quantities(batch, "seat") == (1, 0, 1)
        assert _quantities(batch, "credits") == (1, 0, 1)


def test_a_replenishable_quantity_comes_back_after_each_failed_attempt(
    batch: Any, wait_status: WaitStatus
) -> None:
    queue = _queue(batch, "flaky")
    batch.create_consumable_resource(consumableResourceName="one-seat", totalQuantity=1)
    definition = _definition(batch, "flaky-seat", ("one-seat", 1))
    flaky = _submit(batch, definition, "exit:3", queue=queue, retryStrategy={"attempts": 2})
    after = _submit(batch, definition, "print:after", queue=queue)
    failed = wait_status(flaky)
    assert failed["status"] == "FAILED" and len(failed["attempts"]) == 2
    assert wait_status(after)["status"] == "SUCCEEDED"
    assert _quantities(batch, "one-seat") == (1, 0, 1)


def _mutated(rng: random.Random, document: Any) -> Any:
    """``document`` with one member replaced, at any depth, by a value of another JSON type."""
    if isinstance(document, dict) and document and rng.random() < 0.8:
        copy = dict(document)
        key = rng.choice(list(copy))
        copy[key] = _mutated(rng, copy[key])
        return copy
    if isinstance(document, list) and document and rng.random() < 0.8:
        return [_mutated(rng, item) for item in document]
    return rng.choice(
        [None, True, -1, 0, 2**63, 1.5, "", "x" * 200, "arn:aws:batch:x", [], [1], {}, {"a": 1}]
    )


def test_mutated_consumable_and_gpu_requests_get_client_errors_never_a_server_error(
    endpoint: EndpointHandle, batch: Any
) -> None:
    batch.create_consumable_resource(consumableResourceName="fuzzed", totalQuantity=3)
    needs = {"consumableResourceList": [{"consumableResource": "fuzzed", "quantity": 1}]}
    valid = {
        "/v1/createconsumableresource": {
            "consumableResourceName": "fuzz-new",
            "totalQuantity": 2,
            "resourceType": "NON_REPLENISHABLE",
            "tags": {"a": "b"},
        },
        "/v1/updateconsumableresource": {
            "consumableResource": "fuzzed",
            "operation": "ADD",
            "quantity": 1,
            "clientToken": "t",
        },
        "/v1/describeconsumableresource": {"consumableResource": "fuzzed"},
        "/v1/listconsumableresources": {
            "filters": [{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["fuzz*"]}],
            "maxResults": 10,
        },
        "/v1/listjobsbyconsumableresource": {
            "consumableResource": "fuzzed",
            "filters": [{"name": "JOB_STATUS", "values": ["RUNNABLE"]}],
        },
        "/v1/registerjobdefinition": {
            "jobDefinitionName": "fuzz-def",
            "type": "container",
            "containerProperties": {
                "image": IMAGE,
                "command": ["python", "testjob.py"],
                "resourceRequirements": [{"type": "GPU", "value": "1"}, {"type": "VCPU", "value": "1"}],
            },
            "consumableResourceProperties": needs,
        },
    }
    rng = random.Random(20261201)
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    statuses: dict[int, int] = {}
    for _ in range(600):
        path = rng.choice(list(valid))
        body = json.dumps(_mutated(rng, valid[path])).encode()
        headers = endpoint.signed_headers("POST", path, body, {"Content-Type": "application/json"})
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500, (path, body[:300], payload[:300])
        if response.status >= 400:
            assert json.loads(payload)["__type"] == "ClientException"
    connection.close()
    assert statuses.get(400, 0) > 100 and statuses.get(200, 0) > 10
    assert (
        batch.describe_consumable_resource(consumableResource="fuzzed")["consumableResourceName"] == "fuzzed"
    )
