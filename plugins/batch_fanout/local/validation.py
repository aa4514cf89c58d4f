"""AWS's own checks of Batch requests (what AWS rejects with ``ClientException``), and paging.

Every check raises ``client_error`` with a message naming the input, before any state changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from batch_fanout.local.errors import client_error
from batch_fanout.specs.model import EXIT_PATTERN_KEYS, exit_pattern_problem

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MAX_ARRAY_SIZE = 10_000
MAX_DEPENDENCIES = 20
MAX_JOB_DEFINITION_BYTES = 24 * 1024
MAX_SUBMIT_BYTES = 30 * 1024
MAX_DESCRIBE_JOBS = 100
MIN_TIMEOUT_SECONDS = 60
MAX_EVALUATE_ON_EXIT = 5
DEFAULT_PAGE = 100
MAX_LIST_JOBS_PAGE = 1000
MAX_FILTERED_PAGE = 100


def check_name(value: str, what: str) -> None:
    if not NAME_PATTERN.match(value):
        raise client_error(
            f"Invalid {what} {value!r}: it must be 1 to 128 characters, start with a letter or digit, "
            "and contain only letters, digits, hyphens (-) and underscores (_)"
        )


def check_environment(environment: list[dict[str, Any]] | None, where: str) -> None:
    for variable in environment or []:
        name = variable.get("name", "")
        if name.startswith("AWS_BATCH_"):
            raise client_error(
                f"Invalid environment variable {name!r} in {where}: names starting with AWS_BATCH_ "
                "are reserved for the variables AWS Batch sets"
            )


def check_retry_strategy(strategy: dict[str, Any] | None) -> None:
    if not strategy:
        return
    attempts = strategy.get("attempts")
    if attempts is not None and not 1 <= attempts <= 10:
        raise client_error(f"retryStrategy.attempts must be between 1 and 10, got {attempts}")
    rules = strategy.get("evaluateOnExit") or []
    if len(rules) > MAX_EVALUATE_ON_EXIT:
        raise client_error(
            f"retryStrategy.evaluateOnExit has {len(rules)} rules; at most {MAX_EVALUATE_ON_EXIT} are allowed"
        )
    for position, rule in enumerate(rules):
        where = f"retryStrategy.evaluateOnExit[{position}]"
        action = rule.get("action")
        if not isinstance(action, str) or action.upper() not in ("RETRY", "EXIT"):
            raise client_error(f"{where}.action must be RETRY or EXIT (in any case), got {action!r}")
        for key in EXIT_PATTERN_KEYS:
            if rule.get(key) is not None:
                check_exit_pattern(rule[key], f"{where}.{key}")
        if not any(rule.get(key) is not None for key in EXIT_PATTERN_KEYS):
            raise client_error(f"{where} needs onExitCode, onReason or onStatusReason")


def check_exit_pattern(pattern: Any, where: str) -> None:
    """One ``onExitCode``, ``onReason`` or ``onStatusReason`` pattern, by AWS's documented rules."""
    problem = exit_pattern_problem(where.rsplit(".", 1)[-1], pattern)
    if problem is not None:
        raise client_error(f"Invalid {where} {pattern!r}: {problem}")


def check_timeout(timeout: dict[str, Any] | None) -> None:
    if timeout and timeout.get("attemptDurationSeconds") is not None:
        seconds = timeout["attemptDurationSeconds"]
        if seconds < MIN_TIMEOUT_SECONDS:
            raise client_error(
                f"timeout.attemptDurationSeconds must be at least {MIN_TIMEOUT_SECONDS} seconds, got {seconds}"
            )


def check_resource_requirements(requirements: list[dict[str, Any]] | None, where: str) -> None:
    for requirement in requirements or []:
        kind, value = requirement.get("type"), requirement.get("value", "")
        if kind in ("VCPU", "MEMORY"):
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if number <= 0 or (kind == "MEMORY" and not number.is_integer()):
                raise client_error(f"Invalid {kind} value {value!r} in {where}.resourceRequirements")
        elif kind == "GPU" and not (re.fullmatch(r"[0-9]+", value) and int(value) > 0):
            # A number of physical GPUs: whole, never a fraction of one.
            raise client_error(
                f"Invalid GPU value {value!r} in {where}.resourceRequirements: give a whole number of GPUs, 1 or more"
            )


def check_gpu_platform(
    requirements: list[dict[str, Any]] | None, platforms: list[str] | None, where: str
) -> None:
    """AWS: GPUs aren't available for jobs that run on Fargate resources."""
    if "FARGATE" in (platforms or []) and any(item.get("type") == "GPU" for item in requirements or []):
        raise client_error(
            f"Invalid {where}.resourceRequirements: GPUs aren't available for jobs that run on Fargate resources"
        )


def page(
    items: list[Any], next_token: str | None, max_results: int | None, limit: int
) -> tuple[list[Any], str | None]:
    start = 0
    if next_token:
        try:
            start = int(next_token)
        except ValueError:
            raise client_error(f"Invalid nextToken {next_token!r}") from None
        if start < 0 or start > len(items):
            raise client_error(f"Invalid nextToken {next_token!r}")
    size = max_results or DEFAULT_PAGE
    if size < 1 or size > limit:
        raise client_error(f"maxResults must be between 1 and {limit}, got {size}")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def paged(key: str, items: list[Any], params: dict[str, Any], limit: int) -> dict[str, Any]:
    """A response listing one page of ``items`` under ``key``, with ``nextToken`` when more follow."""
    chosen, token = page(items, params.get("nextToken"), params.get("maxResults"), limit)
    response: dict[str, Any] = {key: chosen}
    if token:
        response["nextToken"] = token
    return response


def check_job_definition(params: dict[str, Any]) -> dict[str, Any] | None:
    """RegisterJobDefinition's checks; returns the container properties (``None`` for a ``multinode``
    definition, whose ``nodeProperties`` ``multinode.check_node_properties`` checks)."""
    name = params["jobDefinitionName"]
    check_name(name, "job definition name")
    size = len(json.dumps(params, separators=(",", ":")).encode())
    if size > MAX_JOB_DEFINITION_BYTES:
        raise client_error(
            f"Job definition {name} is {size} bytes; the limit is 24 KiB ({MAX_JOB_DEFINITION_BYTES} bytes)"
        )
    if params["type"] not in ("container", "multinode"):
        raise client_error(
            f"Job definition type {params['type']!r} is not supported by the local endpoint; use 'container' "
            "or 'multinode'"
        )
    check_retry_strategy(params.get("retryStrategy"))
    check_timeout(params.get("timeout"))
    if params["type"] == "multinode":
        return None
    if params.get("nodeProperties"):
        raise client_error(f"Job definition {name}: nodeProperties needs type multinode")
    # AWS takes one kind of properties per definition; a second would be ignored here without a word.
    given = [key for key in ("containerProperties", "ecsProperties", "eksProperties") if params.get(key)]
    if len(given) > 1:
        raise client_error(
            f"Job definition {name}: only one of containerProperties, ecsProperties and eksProperties may be "
            f"given, got {' and '.join(given)}"
        )
    container: dict[str, Any] | None = params.get("containerProperties")
    if not container:
        raise client_error(f"Job definition {name}: containerProperties is required for type container")
    if not container.get("image"):
        raise client_error(f"Job definition {name}: containerProperties.image is required")
    check_environment(container.get("environment"), "containerProperties.environment")
    check_resource_requirements(container.get("resourceRequirements"), "containerProperties")
    check_gpu_platform(
        container.get("resourceRequirements"), params.get("platformCapabilities"), "containerProperties"
    )
    return container


def check_submit(params: dict[str, Any]) -> int | None:
    """SubmitJob's checks that need no state; returns the array size."""
    check_name(params["jobName"], "job name")
    array_size: int | None = (params.get("arrayProperties") or {}).get("size")
    if array_size is not None and not 2 <= array_size <= MAX_ARRAY_SIZE:
        raise client_error(f"Array job size must be between 2 and {MAX_ARRAY_SIZE}, got {array_size}")
    depends_on = params.get("dependsOn") or []
    if len(depends_on) > MAX_DEPENDENCIES:
        raise client_error(f"A job can depend on at most {MAX_DEPENDENCIES} jobs, got {len(depends_on)}")
    overrides = params.get("containerOverrides") or {}
    check_environment(overrides.get("environment"), "containerOverrides.environment")
    check_resource_requirements(overrides.get("resourceRequirements"), "containerOverrides")
    check_retry_strategy(params.get("retryStrategy"))
    check_timeout(params.get("timeout"))
    for unsupported in ("eksPropertiesOverride", "ecsPropertiesOverride"):
        if params.get(unsupported):
            raise client_error(f"{unsupported} is not supported by the local endpoint")
    return array_size


def check_compute_environment(params: dict[str, Any]) -> None:
    name = params["computeEnvironmentName"]
    check_name(name, "compute environment name")
    resources = params.get("computeResources")
    if params["type"] == "MANAGED" and not resources:
        raise client_error(
            f"Compute environment {name}: computeResources is required for a MANAGED environment"
        )
    if resources is not None and resources.get("maxvCpus") is None:
        raise client_error(f"Compute environment {name}: computeResources.maxvCpus is required")
