"""Multi-node parallel jobs: AWS's checks of ``nodeProperties`` and ``nodeOverrides``, the job's spec,
its node jobs ``<id>#<index>`` and how DescribeJobs and ListJobs show them.

A multi-node job is a parent job with one node job per node. The parent's spec holds the whole job's
capacity (the sum of its nodes', so the scheduler places the whole gang at once) and, under
``nodeRanges``, each node range's container; a node's own spec is derived from it. How the nodes run
(main node first, the job's status from the main node) is ``multinode_runs``.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from batch_fanout.local.errors import client_error
from batch_fanout.local.validation import check_environment, check_resource_requirements

if TYPE_CHECKING:
    from batch_fanout.local.jobs import Job
    from batch_fanout.local.scheduler import Scheduler

MAX_NODES = 1000  # AWS's default limit of nodes in one job
MAX_NODE_RANGES = 5  # AWS: up to five distinct node groups per job
MAIN_NODE_ADDRESS = "127.0.0.1"  # every node runs on this machine
RANGE_PATTERN = re.compile(r"^(\d*):(\d*)$")
# GPUs and consumable resources are held per job, and a multi-node job's capacity is held per node.
UNSUPPORTED_IN_NODES = "{what}: multi-node parallel jobs with GPUs or consumable resources are not supported by the local endpoint"


def check_no_gpus(requirements: list[dict[str, Any]] | None, where: str) -> None:
    if any(item.get("type") == "GPU" for item in requirements or []):
        raise client_error(UNSUPPORTED_IN_NODES.format(what=f"{where}.resourceRequirements GPU"))


def parse_range(target: str, num_nodes: int, where: str) -> tuple[int, int]:
    """``targetNodes`` (``0:3``, ``:3``, ``2:``, ``:``) as inclusive node indices, checked against
    ``num_nodes``."""
    match = RANGE_PATTERN.match(target or "")
    if not match:
        raise client_error(
            f"Invalid {where}.targetNodes {target!r}: give a range of node indices such as 0:3, :3, 2: or :"
        )
    start = int(match.group(1)) if match.group(1) else 0
    end = int(match.group(2)) if match.group(2) else num_nodes - 1
    if start > end or end >= num_nodes:
        raise client_error(
            f"Invalid {where}.targetNodes {target!r}: the job has {num_nodes} nodes (indices 0 to "
            f"{num_nodes - 1})"
        )
    return start, end


def node_ranges(node_properties: dict[str, Any], num_nodes: int) -> list[tuple[int, int]]:
    """Each node range's indices, after AWS's checks: together they cover every node, and ranges that
    overlap are nested (the narrower one wins for the nodes it names)."""
    ranges = [
        parse_range(item.get("targetNodes", ""), num_nodes, f"nodeRangeProperties[{position}]")
        for position, item in enumerate(node_properties["nodeRangeProperties"])
    ]
    for first, (start_a, end_a) in enumerate(ranges):
        for second in range(first + 1, len(ranges)):
            start_b, end_b = ranges[second]
            if end_a < start_b or end_b < start_a:
                continue
            nested = (start_a <= start_b and end_b <= end_a) or (start_b <= start_a and end_a <= end_b)
            if not nested or (start_a, end_a) == (start_b, end_b):
                raise client_error(
                    f"nodeRangeProperties[{first}] ({start_a}:{end_a}) and nodeRangeProperties[{second}] "
                    f"({start_b}:{end_b}) overlap; node ranges may only overlap when one is nested in the other"
                )
    covered = [False] * num_nodes
    for start, end in ranges:
        covered[start : end + 1] = [True] * (end + 1 - start)
    missing = [index for index, done in enumerate(covered) if not done]
    if missing:
        raise client_error(
            f"nodeRangeProperties do not cover every node: node {missing[0]} of 0:{num_nodes - 1} is in no "
            "range; the ranges must account for all nodes"
        )
    return ranges


def range_of(ranges: list[tuple[int, int]], index: int) -> int:
    """The position of the narrowest range that holds node ``index``."""
    holding = [position for position, (start, end) in enumerate(ranges) if start <= index <= end]
    return min(holding, key=lambda position: ranges[position][1] - ranges[position][0])


def check_node_properties(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """RegisterJobDefinition's checks of a ``multinode`` definition; returns its ``nodeProperties``."""
    properties: dict[str, Any] | None = params.get("nodeProperties")
    if not properties:
        raise client_error(f"Job definition {name}: nodeProperties is required for type multinode")
    if params.get("containerProperties"):
        raise client_error(
            f"Job definition {name}: a multinode job definition takes nodeProperties, not containerProperties"
        )
    if "FARGATE" in (params.get("platformCapabilities") or []):
        raise client_error(f"Job definition {name}: multi-node parallel jobs cannot run on FARGATE")
    if params.get("consumableResourceProperties"):
        raise client_error(UNSUPPORTED_IN_NODES.format(what="consumableResourceProperties"))
    num_nodes, main_node = properties["numNodes"], properties["mainNode"]
    if not 1 <= num_nodes <= MAX_NODES:
        raise client_error(
            f"Job definition {name}: numNodes must be between 1 and {MAX_NODES}, got {num_nodes}"
        )
    if not 0 <= main_node < num_nodes:
        raise client_error(
            f"Job definition {name}: mainNode {main_node} must be a node index below numNodes {num_nodes}"
        )
    ranges = properties["nodeRangeProperties"]
    if not 1 <= len(ranges) <= MAX_NODE_RANGES:
        raise client_error(
            f"Job definition {name}: nodeRangeProperties must hold 1 to {MAX_NODE_RANGES} node ranges, "
            f"got {len(ranges)}"
        )
    for position, item in enumerate(ranges):
        where = f"nodeRangeProperties[{position}]"
        container = item.get("container")
        if not container or not container.get("image"):
            raise client_error(f"Job definition {name}: {where}.container.image is required")
        if item.get("consumableResourceProperties"):
            raise client_error(UNSUPPORTED_IN_NODES.format(what=f"{where}.consumableResourceProperties"))
        check_no_gpus(container.get("resourceRequirements"), f"{where}.container")
        if item.get("ecsProperties") or item.get("eksProperties"):
            raise client_error(
                f"{where}: ecsProperties and eksProperties are not supported by the local endpoint"
            )
        check_environment(container.get("environment"), f"{where}.container.environment")
        check_resource_requirements(container.get("resourceRequirements"), f"{where}.container")
    node_ranges(properties, num_nodes)
    return properties


def check_node_overrides(
    params: dict[str, Any], definition: dict[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """SubmitJob's checks of a multi-node job: the number of nodes, and each node range's container
    overrides (in the definition's order)."""
    name = definition["jobDefinitionName"]
    if definition.get("type") != "multinode":
        raise client_error(
            f"nodeOverrides apply to multi-node parallel jobs only; job definition {name} is of type "
            f"{definition.get('type')}"
        )
    if params.get("arrayProperties"):
        raise client_error("A multi-node parallel job cannot be an array job: remove arrayProperties")
    if params.get("consumableResourcePropertiesOverride"):
        raise client_error(UNSUPPORTED_IN_NODES.format(what="consumableResourcePropertiesOverride"))
    if params.get("containerOverrides"):
        raise client_error(
            "containerOverrides do not apply to a multi-node parallel job: use "
            "nodeOverrides.nodePropertyOverrides"
        )
    properties = definition["nodeProperties"]
    overrides = params.get("nodeOverrides") or {}
    num_nodes = int(properties["numNodes"])
    if overrides.get("numNodes") is not None:
        num_nodes = int(overrides["numNodes"])
        open_ended = [item for item in properties["nodeRangeProperties"] if item["targetNodes"].endswith(":")]
        if not open_ended:
            raise client_error(
                f"nodeOverrides.numNodes needs a node range of job definition {name} with an open upper "
                "bound (such as 0: or :)"
            )
        if not 1 <= num_nodes <= MAX_NODES:
            raise client_error(f"nodeOverrides.numNodes must be between 1 and {MAX_NODES}, got {num_nodes}")
        if properties["mainNode"] >= num_nodes:
            raise client_error(
                f"nodeOverrides.numNodes {num_nodes} must be above the main node index {properties['mainNode']}"
            )
        node_ranges(properties, num_nodes)
    by_target = {
        item["targetNodes"]: position for position, item in enumerate(properties["nodeRangeProperties"])
    }
    per_range: list[dict[str, Any]] = [{} for _ in by_target]
    unmatched = []
    for position, override in enumerate(overrides.get("nodePropertyOverrides") or []):
        target = override.get("targetNodes", "")
        if target not in by_target:
            unmatched.append(target)
            continue
        for unsupported in ("ecsPropertiesOverride", "eksPropertiesOverride"):
            if override.get(unsupported):
                raise client_error(
                    f"nodePropertyOverrides[{position}].{unsupported} is not supported by the local endpoint"
                )
        container = override.get("containerOverrides") or {}
        where = f"nodePropertyOverrides[{position}].containerOverrides"
        check_environment(container.get("environment"), f"{where}.environment")
        check_resource_requirements(container.get("resourceRequirements"), where)
        check_no_gpus(container.get("resourceRequirements"), where)
        if override.get("consumableResourcePropertiesOverride"):
            raise client_error(
                UNSUPPORTED_IN_NODES.format(
                    what=f"nodePropertyOverrides[{position}].consumableResourcePropertiesOverride"
                )
            )
        per_range[by_target[target]] = container
    if unmatched:
        raise client_error(
            "NodeOverride targets should match job definition. Non matching targets - " + ", ".join(unmatched)
        )
    return num_nodes, per_range


def multinode_spec(
    params: dict[str, Any], definition: dict[str, Any], dependencies: list[dict[str, Any]], region: str
) -> dict[str, Any]:
    """The parent's spec of a multi-node job: its main node's container, each range's container under
    ``nodeRanges``, and the whole job's vCPUs and memory (the sum of its nodes')."""
    from batch_fanout.local.submission import job_spec  # here: submission imports jobs, which imports us

    num_nodes, overrides = check_node_overrides(params, definition)
    properties = definition["nodeProperties"]
    ranges = node_ranges(properties, num_nodes)
    main_node = int(properties["mainNode"])
    resolved = []
    for position, item in enumerate(properties["nodeRangeProperties"]):
        request = {**params, "containerOverrides": overrides[position]}
        part = job_spec(
            request, {**definition, "containerProperties": item["container"]}, dependencies, region
        )
        start, end = ranges[position]
        resolved.append(
            {
                "start": start,
                "end": end,
                "container": part["container"],
                "vcpus": part["vcpus"],
                "memory": part["memory"],
            }
        )
    main_range = range_of(ranges, main_node)
    main_properties = properties["nodeRangeProperties"][main_range]["container"]
    spec = job_spec(
        {**params, "containerOverrides": overrides[main_range]},
        {**definition, "containerProperties": main_properties},
        dependencies,
        region,
    )
    spec["nodeProperties"] = {
        "numNodes": num_nodes,
        "mainNode": main_node,
        "nodeRangeProperties": properties["nodeRangeProperties"],
    }
    spec["nodeRanges"] = resolved
    nodes = [resolved[range_of(ranges, index)] for index in range(num_nodes)]
    spec["vcpus"] = float(sum(node["vcpus"] for node in nodes))
    spec["memory"] = int(sum(node["memory"] for node in nodes))
    return spec


def node_spec(parent_spec: dict[str, Any], index: int) -> dict[str, Any]:
    """The spec of node ``index`` of a multi-node job: its range's container and capacity. Only the main
    node carries the timeout (AWS: it applies to the whole job, which ends when the main node does)."""
    ranges = [(item["start"], item["end"]) for item in parent_spec["nodeRanges"]]
    node_range = parent_spec["nodeRanges"][range_of(ranges, index)]
    # A node does not count for fair share on its own: its job counts with every node's vCPUs.
    dropped = ("nodeProperties", "nodeRanges", "shareIdentifier")
    spec = {key: value for key, value in parent_spec.items() if key not in dropped}
    spec.update(
        container=node_range["container"],
        vcpus=node_range["vcpus"],
        memory=node_range["memory"],
        dependsOn=[],
    )
    if index != parent_spec["nodeProperties"]["mainNode"]:
        spec.pop("timeout", None)
    return spec


def is_multinode_parent(job: Job) -> bool:
    return job.parent is None and "nodeProperties" in job.spec


def main_index(parent: Job) -> int:
    return int(parent.spec["nodeProperties"]["mainNode"])


def new_multinode_jobs(  # noqa: PLR0917 - the parts of one submission
    scheduler: Scheduler,
    params: dict[str, Any],
    definition: dict[str, Any],
    queue_arn: str,
    region: str,
    dependencies: list[dict[str, Any]],
) -> tuple[Job, list[Job]]:
    """A new multi-node job and its node jobs ``<id>#<index>``, with sequence numbers from ``scheduler``."""
    from batch_fanout.local.jobs import Job, now_ms  # here: jobs imports this module

    spec = multinode_spec(params, definition, dependencies, region)
    num_nodes = int(spec["nodeProperties"]["numNodes"])
    job_id = str(uuid.uuid4())
    first_seq = scheduler.allocate_seq(1 + num_nodes)
    created = now_ms()
    job = Job(job_id, first_seq, params["jobName"], queue_arn, region, spec, created)
    by_range: dict[tuple[int, int], dict[str, Any]] = {}
    nodes = []
    for index in range(num_nodes):
        main = index == main_index(job)
        ranges = [(item["start"], item["end"]) for item in spec["nodeRanges"]]
        key = (range_of(ranges, index), int(main))
        if key not in by_range:  # nodes of one range share one spec
            by_range[key] = node_spec(spec, index)
        nodes.append(
            Job(
                f"{job_id}#{index}",
                first_seq + 1 + index,
                job.name,
                queue_arn,
                region,
                by_range[key],
                created,
                parent=job,
                node_index=index,
            )
        )
    return job, nodes


def node_variables(job: Job) -> dict[str, str]:
    """The ``AWS_BATCH_*`` variables of a node (AWS's: the main node's address only on the others)."""
    assert job.parent is not None and job.node_index is not None
    properties = job.parent.spec["nodeProperties"]
    variables = {
        "AWS_BATCH_JOB_NODE_INDEX": str(job.node_index),
        "AWS_BATCH_JOB_NUM_NODES": str(properties["numNodes"]),
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": str(properties["mainNode"]),
    }
    if job.node_index != properties["mainNode"]:
        variables["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = MAIN_NODE_ADDRESS
    return variables


def decorate_detail(job: Job, detail: dict[str, Any]) -> None:
    """DescribeJobs of a multi-node job: the parent shows ``nodeProperties`` and no container (its
    attempts are its main node's); a node shows ``nodeDetails`` and its own container."""
    if job.node_index is not None and job.parent is not None:
        detail["nodeDetails"] = {
            "nodeIndex": job.node_index,
            "isMainNode": job.node_index == main_index(job.parent),
        }
    elif is_multinode_parent(job):
        detail.pop("container", None)
        detail["nodeProperties"] = job.spec["nodeProperties"]


def decorate_summary(job: Job, view: dict[str, Any]) -> None:
    """ListJobs of a multi-node job: ``nodeProperties`` (``NodePropertiesSummary``)."""
    if job.node_index is not None and job.parent is not None:
        view["nodeProperties"] = {
            "isMainNode": job.node_index == main_index(job.parent),
            "numNodes": int(job.parent.spec["nodeProperties"]["numNodes"]),
            "nodeIndex": job.node_index,
        }
    elif is_multinode_parent(job):
        view["nodeProperties"] = {"numNodes": int(job.spec["nodeProperties"]["numNodes"])}
