"""The wire protocols, driven by botocore's own service models.

AWS Batch speaks REST-JSON (``POST /v1/submitjob``); CloudWatch Logs speaks JSON 1.1 (``POST /`` with
``X-Amz-Target: Logs_20140328.GetLogEvents``). Routes and input validation come from the models that
botocore ships, so that the endpoint accepts exactly what the clients send.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.loaders
import botocore.model
from botocore.validate import ParamValidator

from batch_fanout.local.errors import ApiError


@functools.cache
def service_model(service: str) -> botocore.model.ServiceModel:
    """botocore's model of ``service`` (``batch`` or ``logs``)."""
    loader = botocore.loaders.Loader()
    return botocore.model.ServiceModel(loader.load_service_model(service, "service-2"), service)


@dataclass(frozen=True)
class Route:
    """One REST operation: its method, a regular expression for its path and the path's labels."""

    operation: str
    method: str
    pattern: re.Pattern[str]


@functools.cache
def batch_routes() -> tuple[Route, ...]:
    """The REST routes of every AWS Batch operation in botocore's model."""
    model = service_model("batch")
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?")[0]
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        routes.append(Route(name, http["method"], re.compile(f"^{regex}$")))
    return tuple(routes)


def route_batch_request(method: str, raw_path: str) -> tuple[str, dict[str, Any]] | None:
    """The operation and URI / query-string parameters of a Batch request, or ``None``."""
    path, _, query = raw_path.partition("?")
    model = service_model("batch")
    for route in batch_routes():
        if route.method != method:
            continue
        match = route.pattern.match(path)
        if not match:
            continue
        params: dict[str, Any] = {key: unquote(value) for key, value in match.groupdict().items()}
        input_shape = model.operation_model(route.operation).input_shape
        if query and input_shape is not None:
            parsed = parse_qs(query, keep_blank_values=True)
            for member_name, member in input_shape.members.items():
                if member.serialization.get("location") != "querystring":
                    continue
                values = parsed.get(member.serialization.get("name", member_name))
                if values is None:
                    continue
                params[member_name] = values if member.type_name == "list" else values[-1]
        return route.operation, params
    return None


# Enumerations that AWS accepts in any case ("The values aren't case sensitive").
CASE_INSENSITIVE_ENUMS = frozenset({"RetryAction"})


def _enum_errors(value: Any, shape: botocore.model.Shape, name: str, errors: list[str]) -> None:
    """Check the enumerations, which botocore's validator leaves to the server."""
    if isinstance(shape, botocore.model.StructureShape) and isinstance(value, dict):
        for member_name, member_shape in shape.members.items():
            if member_name in value:
                _enum_errors(value[member_name], member_shape, f"{name}.{member_name}", errors)
    elif isinstance(shape, botocore.model.ListShape) and isinstance(value, list):
        for index, item in enumerate(value):
            _enum_errors(item, shape.member, f"{name}[{index}]", errors)
    elif isinstance(shape, botocore.model.MapShape) and isinstance(value, dict):
        for key, item in value.items():
            _enum_errors(item, shape.value, f"{name}.{key}", errors)
    elif isinstance(shape, botocore.model.StringShape) and isinstance(value, str):
        if shape.name in CASE_INSENSITIVE_ENUMS:
            value = value.upper()
        allowed = shape.enum
        if allowed and value not in allowed:
            errors.append(
                f"Invalid value for parameter {name.lstrip('.')}: {value!r}, valid values: "
                + ", ".join(allowed)
            )


def validate_input(service: str, operation: str, params: dict[str, Any], error_code: str) -> None:
    """Validate ``params`` against the operation's input shape; raise ``ApiError`` naming the input.

    :param service: ``batch`` or ``logs``
    :param operation: the operation name, for example ``SubmitJob``
    :param params: the decoded request parameters
    :param error_code: the error code the service uses for invalid input
    """
    input_shape = service_model(service).operation_model(operation).input_shape
    if input_shape is None:
        if params:
            raise ApiError(error_code, f"{operation} takes no parameters, got: {', '.join(params)}")
        return
    report = ParamValidator().validate(params, input_shape)
    errors = [report.generate_report()] if report.has_errors() else []
    _enum_errors(params, input_shape, "", errors)
    if errors:
        raise ApiError(error_code, "; ".join(error.replace("\n", "; ") for error in errors))


def logs_operation(target: str) -> str | None:
    """The CloudWatch Logs operation of an ``X-Amz-Target`` header, or ``None`` if it names none."""
    model = service_model("logs")
    prefix = model.metadata["targetPrefix"] + "."
    if not target.startswith(prefix):
        return None
    name = target[len(prefix) :]
    return name if name in model.operation_names else None
