"""Validate a request body against botocore's model of the AWS Batch API.

The model is the one boto3 itself uses to build requests, so a spec that passes here has the member
names, types, required members and enum values that AWS Batch accepts. Checks are collected rather
than stopping at the first one, so a user sees every problem of a file at once.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any

import botocore.loaders

# What each kind of spec file is a request body of.
OPERATION_INPUT_SHAPES = {
    "job-definition": "RegisterJobDefinitionRequest",
    "job-queue": "CreateJobQueueRequest",
    "compute-environment": "CreateComputeEnvironmentRequest",
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# AWS's patterns of an ``evaluateOnExit`` rule (the API reference's EvaluateOnExit): up to 512
# characters; an exit code of digits only, a reason or status reason of letters, numbers, periods,
# colons and white space; each may end with ``*``, a glob that matches any rest (``*`` alone matches
# anything). The model has no pattern for them, so validate_shape does not check them.
EXIT_PATTERN_KEYS = ("onExitCode", "onReason", "onStatusReason")
MAX_EXIT_PATTERN = 512
_EXIT_CODE_CHARACTERS = re.compile(r"[0-9]")
_REASON_CHARACTERS = re.compile(r"[A-Za-z0-9.:\s]", re.ASCII)


def exit_pattern_problem(key: str, pattern: object) -> str | None:
    """What is wrong with the ``evaluateOnExit`` pattern ``pattern`` under ``key`` (``onExitCode``,
    ``onReason`` or ``onStatusReason``) by AWS's documented rules, or ``None`` when it is valid."""
    if not isinstance(pattern, str):
        return f"must be a string, not {type(pattern).__name__}"
    if not 1 <= len(pattern) <= MAX_EXIT_PATTERN:
        return f"must be 1 to {MAX_EXIT_PATTERN} characters long, got {len(pattern)}"
    if key == "onExitCode":
        allowed, characters = "only numbers", _EXIT_CODE_CHARACTERS
    else:
        allowed, characters = (
            "only letters, numbers, periods (.), colons (:) and white space",
            _REASON_CHARACTERS,
        )
    # Name the first character that is wrong: a ``*`` before the end, or one outside the set.
    bad = next((char for char in pattern.removesuffix("*") if not characters.fullmatch(char)), None)
    if bad is None:
        return None
    problem = "an asterisk (*) may only end it" if bad == "*" else f"{bad!r} is not allowed"
    return f"{problem}; it can contain {allowed}, optionally ending with an asterisk (*)"


@lru_cache(maxsize=1)
def batch_shapes() -> dict[str, Any]:
    """The shapes of botocore's ``batch`` service model, loaded once."""
    model = botocore.loaders.Loader().load_service_model("batch", "service-2")
    return dict(model["shapes"])


def join_key(path: str, key: str) -> str:
    """Extend a path with a structure member or map key."""
    segment = key if _IDENTIFIER.match(key) else f"[{key!r}]"
    if not path:
        return segment
    return f"{path}{segment}" if segment.startswith("[") else f"{path}.{segment}"


def join_index(path: str, index: int) -> str:
    """Extend a path with a list index."""
    return f"{path}[{index}]"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, int):
        return f"integer {value!r}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def validate_shape(value: Any, shape_name: str, path: str = "") -> list[tuple[str, str]]:
    """Check ``value`` against the named shape.

    :param value: the parsed spec (or part of it)
    :param shape_name: a shape of the ``batch`` model, e.g. ``RegisterJobDefinitionRequest``
    :param path: where ``value`` sits in its file
    :return: ``(path, message)`` for every problem found; empty when the value is valid
    """
    shape = batch_shapes()[shape_name]
    kind = shape["type"]
    problems: list[tuple[str, str]] = []
    if kind == "structure":
        if not isinstance(value, dict):
            return [(path, f"expected a mapping ({shape_name}), got {_describe(value)}")]
        members = shape.get("members", {})
        for required in shape.get("required", []):
            if required not in value:
                problems.append((path, f"missing required member {required!r}"))
        for key, item in value.items():
            if key not in members:
                problems.append((join_key(path, str(key)), _unknown_member(str(key), members)))
                continue
            problems.extend(validate_shape(item, members[key]["shape"], join_key(path, key)))
    elif kind == "list":
        if not isinstance(value, list):
            return [(path, f"expected a list, got {_describe(value)}")]
        problems.extend(_check_length(path, len(value), shape, "entries"))
        for index, item in enumerate(value):
            problems.extend(validate_shape(item, shape["member"]["shape"], join_index(path, index)))
    elif kind == "map":
        if not isinstance(value, dict):
            return [(path, f"expected a mapping, got {_describe(value)}")]
        problems.extend(_check_length(path, len(value), shape, "entries"))
        for key, item in value.items():
            item_path = join_key(path, str(key))
            key_problems = validate_shape(key, shape["key"]["shape"], item_path)
            problems.extend((p, f"key: {m}") for p, m in key_problems)
            problems.extend(validate_shape(item, shape["value"]["shape"], item_path))
    elif kind == "string":
        if not isinstance(value, str):
            return [(path, f"expected a string, got {_describe(value)}")]
        enum = shape.get("enum")
        if enum and value not in enum:
            problems.append((path, f"{value!r} is not one of {', '.join(enum)}"))
        problems.extend(_check_length(path, len(value), shape, "characters"))
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [(path, f"expected an integer, got {_describe(value)}")]
        if "min" in shape and value < shape["min"]:
            problems.append((path, f"{value} is below the minimum {shape['min']}"))
        if "max" in shape and value > shape["max"]:
            problems.append((path, f"{value} is above the maximum {shape['max']}"))
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [(path, f"expected a number, got {_describe(value)}")]
    elif kind == "boolean":
        if not isinstance(value, bool):
            return [(path, f"expected true or false, got {_describe(value)}")]
    else:  # pragma: no cover - the batch model has no other shape types today
        problems.append((path, f"shape {shape_name} of type {kind} is not supported in specs"))
    return problems


def _unknown_member(key: str, members: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(members), n=1)
    if close:
        return f"unknown member {key!r}; did you mean {close[0]!r}?"
    return f"unknown member {key!r}; expected one of {', '.join(members)}"


def _check_length(path: str, length: int, shape: dict[str, Any], unit: str) -> list[tuple[str, str]]:
    problems = []
    if "min" in shape and length < shape["min"]:
        problems.append((path, f"has {length} {unit}, fewer than the minimum {shape['min']}"))
    if "max" in shape and length > shape["max"]:
        problems.append((path, f"has {length} {unit}, more than the maximum {shape['max']}"))
    return problems
