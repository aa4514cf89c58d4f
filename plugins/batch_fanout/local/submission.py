"""SubmitJob: a request and its job definition turned into a job spec, a job and its array children.

The spec is what every child shares (definition, command after ``Ref::`` substitution, merged
environment and resources, dependencies, retry strategy, timeout), so that a 10,000-child array costs
one spec and 10,000 small records.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import botocore.model

from batch_fanout.local.consumables import merged_requirements
from batch_fanout.local.errors import client_error
from batch_fanout.local.jobs import Job, now_ms
from batch_fanout.local.protocol import service_model
from batch_fanout.local.registry import arn
from batch_fanout.local.scheduler import Scheduler


@functools.cache
def container_detail_members() -> frozenset[str]:
    shape = service_model("batch").shape_for("ContainerDetail")
    assert isinstance(shape, botocore.model.StructureShape)
    return frozenset(shape.members)


def merge_by(base: list[dict[str, Any]], overrides: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    merged = {item[key]: item for item in base}
    for item in overrides:
        merged[item[key]] = item
    return list(merged.values())


def substitute(command: list[str], parameters: dict[str, str]) -> list[str]:
    """``Ref::name`` placeholders in the command, replaced by parameter values (AWS's rule)."""
    return [
        parameters[argument[5:]] if argument.startswith("Ref::") and argument[5:] in parameters else argument
        for argument in command
    ]


def check_dependencies(
    depends_on: list[dict[str, Any]], array_size: int | None, scheduler: Scheduler
) -> list[dict[str, Any]]:
    """AWS's checks of ``dependsOn`` against the known jobs; returns the dependencies to keep."""
    dependencies = []
    for position, dependency in enumerate(depends_on):
        kind = dependency.get("type")
        target_id = dependency.get("jobId")
        if kind == "SEQUENTIAL" and array_size is None:
            raise client_error(f"dependsOn[{position}]: a SEQUENTIAL dependency needs an array job")
        if not target_id:
            if kind != "SEQUENTIAL":
                raise client_error(f"dependsOn[{position}]: jobId is required")
        else:
            target = scheduler.jobs.get(target_id)
            if target is None:
                raise client_error(f"dependsOn[{position}]: job {target_id} not found")
            if (
                kind == "N_TO_N"
                and array_size is not None
                and target.is_parent
                and target.array_size != array_size
            ):
                raise client_error(
                    f"dependsOn[{position}]: N_TO_N dependency {target_id} is an array job of size "
                    f"{target.array_size}, but this array job has size {array_size}; N_TO_N needs "
                    "arrays of the same size"
                )
        dependencies.append({key: value for key, value in dependency.items() if value is not None})
    return dependencies


def job_spec(
    params: dict[str, Any], definition: dict[str, Any], dependencies: list[dict[str, Any]], region: str
) -> dict[str, Any]:
    """What the job and its children share, from the request and its definition."""
    properties = definition["containerProperties"]
    overrides = params.get("containerOverrides") or {}
    parameters = {**definition.get("parameters", {}), **(params.get("parameters") or {})}
    members = container_detail_members()
    container: dict[str, Any] = {key: value for key, value in properties.items() if key in members}
    command = overrides.get("command") or properties.get("command") or []
    container["command"] = substitute(list(command), parameters)
    container["environment"] = merge_by(
        properties.get("environment", []), overrides.get("environment", []), "name"
    )
    requirements = merge_by(
        properties.get("resourceRequirements", []), overrides.get("resourceRequirements", []), "type"
    )
    container["resourceRequirements"] = requirements
    for key in ("vcpus", "memory", "instanceType"):
        if overrides.get(key) is not None:
            container[key] = overrides[key]
    by_type = {item["type"]: item["value"] for item in requirements}
    spec: dict[str, Any] = {
        "jobArnPrefix": arn(region, "job/"),
        "jobDefinition": definition["jobDefinitionArn"],
        "jobDefinitionName": definition["jobDefinitionName"],
        "container": container,
        "parameters": parameters,
        "dependsOn": dependencies,
        "tags": params.get("tags") or {},
        "propagateTags": params.get("propagateTags", definition.get("propagateTags", False)),
        "platformCapabilities": definition.get("platformCapabilities", ["EC2"]),
        "vcpus": float(by_type.get("VCPU") or container.get("vcpus") or 1),
        "memory": int(float(by_type.get("MEMORY") or container.get("memory") or 0)),
    }
    retry_strategy = params.get("retryStrategy") or definition.get("retryStrategy")
    if retry_strategy:
        spec["retryStrategy"] = retry_strategy
    timeout = params.get("timeout") or definition.get("timeout")
    if timeout:
        spec["timeout"] = timeout
    priority = params.get("schedulingPriorityOverride", definition.get("schedulingPriority"))
    if priority is not None:
        spec["schedulingPriority"] = priority
    if params.get("shareIdentifier"):
        spec["shareIdentifier"] = params["shareIdentifier"]
    consumables = merged_requirements(
        definition.get("consumableResourceProperties"), params.get("consumableResourcePropertiesOverride")
    )
    if consumables:
        spec["consumableResourceProperties"] = {"consumableResourceList": consumables}
    return spec


def new_jobs(  # noqa: PLR0917 - the parts of one submission
    scheduler: Scheduler, name: str, queue_arn: str, region: str, spec: dict[str, Any], array_size: int | None
) -> tuple[Job, list[Job]]:
    """A new job (and its children for an array), with sequence numbers from ``scheduler``."""
    job_id = str(uuid.uuid4())
    first_seq = scheduler.allocate_seq(1 + (array_size or 0))
    created = now_ms()
    job = Job(job_id, first_seq, name, queue_arn, region, spec, created, array_size=array_size)
    children = [
        Job(
            f"{job_id}:{index}",
            first_seq + 1 + index,
            name,
            queue_arn,
            region,
            spec,
            created,
            parent=job,
            index=index,
        )
        for index in range(array_size or 0)
    ]
    return job, children
