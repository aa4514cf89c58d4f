"""Find, parse and check the spec files of ``include/specs/``.

Layout of a specs directory::

    job-definitions/<name>.yaml        RegisterJobDefinition request bodies
    job-queues/<name>.yaml             CreateJobQueue request bodies
    compute-environments/<name>.yaml   CreateComputeEnvironment request bodies

Files may be YAML (``.yaml``, ``.yml``) or JSON (``.json``). Every file is parsed and checked before
anything is returned, and every problem of every file is reported together in one
:class:`~batch_fanout.specs.errors.SpecError`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batch_fanout.specs.errors import SpecError, SpecProblem
from batch_fanout.specs.model import (
    EXIT_PATTERN_KEYS,
    OPERATION_INPUT_SHAPES,
    exit_pattern_problem,
    join_index,
    join_key,
    validate_shape,
)

KIND_DIRECTORIES = {
    "job-definitions": "job-definition",
    "job-queues": "job-queue",
    "compute-environments": "compute-environment",
}
SPEC_SUFFIXES = (".yaml", ".yml", ".json")

# The tag that keeps a registered job definition's content hash.
HASH_TAG = "batch-fanout:spec-sha256"

# Environment a job gets at submit time (containerOverrides) or from AWS Batch itself; a job
# definition that set them would make every run share one value.
SUBMIT_TIME_ENVIRONMENT = ("RESULTS_URI", "RUN_PREFIX", "BATCH_FANOUT_INDEX_MAP", "BATCH_FANOUT_FAIL_ONCE")

_JOB_DEFINITION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_REF = re.compile(r"Ref::([A-Za-z0-9_]+)")


@dataclass(frozen=True)
class SpecFile:
    """One parsed spec file.

    :param path: where the file is
    :param display: the file's name in messages (relative to the current directory when possible)
    :param kind: ``job-definition``, ``job-queue`` or ``compute-environment``
    :param body: the parsed request body
    """

    path: Path
    display: str
    kind: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        """The name of what the file defines (job definition, queue or compute environment)."""
        key = {
            "job-definition": "jobDefinitionName",
            "job-queue": "jobQueueName",
            "compute-environment": "computeEnvironmentName",
        }[self.kind]
        return str(self.body[key])


def default_specs_dir() -> Path:
    """Where the specs are: ``$BATCH_FANOUT_SPECS_DIR``, else ``include/specs`` under the current
    directory (an Airflow or Astro project root). A project's DAGs name their own folder instead
    (``specs_dir``); the provider ships no job definitions of its own."""
    configured = os.environ.get("BATCH_FANOUT_SPECS_DIR")
    if configured:
        return Path(configured)
    return Path.cwd() / "include" / "specs"


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _UniqueKeySafeLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeySafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeySafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def parse_file(path: Path, display: str) -> tuple[Any, list[SpecProblem]]:
    """Parse one JSON or YAML file; a syntax error becomes a problem with its line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return None, [SpecProblem(display, "", f"cannot read the file: {error}")]
    if path.suffix == ".json":
        try:
            return json.loads(text), []
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            return None, [SpecProblem(display, "", f"invalid JSON at {where}: {error.msg}")]
    try:
        return yaml.load(text, Loader=_UniqueKeySafeLoader), []  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        return None, [SpecProblem(display, "", f"invalid YAML{where}: {problem}")]


def discover(specs_dir: Path) -> list[tuple[Path, str]]:
    """Every spec file under ``specs_dir`` with its kind, in a stable order."""
    found = []
    for directory, kind in KIND_DIRECTORIES.items():
        folder = specs_dir / directory
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            found.append((path, kind))
    return found


def load_specs(specs_dir: Path | None = None) -> list[SpecFile]:
    """Parse and check every spec under ``specs_dir``.

    :param specs_dir: the specs directory; :func:`default_specs_dir` when not given
    :raises SpecError: listing every problem of every file, when any file is invalid
    """
    specs_dir = specs_dir or default_specs_dir()
    if not specs_dir.is_dir():
        raise SpecError([SpecProblem(display_path(specs_dir), "", "the specs directory does not exist")])
    problems: list[SpecProblem] = []
    specs: list[SpecFile] = []
    for path, kind in discover(specs_dir):
        display = display_path(path)
        if path.suffix not in SPEC_SUFFIXES:
            expected = ", ".join(SPEC_SUFFIXES)
            problems.append(SpecProblem(display, "", f"not a spec file (expected a name ending {expected})"))
            continue
        body, parse_problems = parse_file(path, display)
        if parse_problems:
            problems.extend(parse_problems)
            continue
        file_problems = check_body(body, kind)
        problems.extend(SpecProblem(display, where, message) for where, message in file_problems)
        if not file_problems:
            specs.append(SpecFile(path=path, display=display, kind=kind, body=body))
    problems.extend(_check_unique_names(specs))
    if not problems and not any(spec.kind == "job-definition" for spec in specs):
        folder = display_path(specs_dir / "job-definitions")
        problems.append(SpecProblem(folder, "", "no job definitions found"))
    if problems:
        raise SpecError(problems)
    return specs


def check_body(body: Any, kind: str) -> list[tuple[str, str]]:
    """Check one parsed body against the AWS Batch model, then against the project's own rules."""
    if body is None:
        return [("", "the file is empty")]
    if not isinstance(body, dict):
        kind_name = kind.replace("-", " ")
        return [("", f"expected a mapping (a {kind_name} request body), got {type(body).__name__}")]
    problems = validate_shape(body, OPERATION_INPUT_SHAPES[kind])
    if kind == "job-definition" and not problems:
        problems = check_job_definition(body)
    return problems


def check_job_definition(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules AWS Batch enforces at registration or run time that its model cannot express, and the
    project's contract for job definitions (see ``docs/internals.md``)."""
    problems: list[tuple[str, str]] = []
    name = body["jobDefinitionName"]
    if not _JOB_DEFINITION_NAME.match(name):
        problems.append(
            ("jobDefinitionName", f"{name!r} must be 1 to 128 letters, digits, hyphens or underscores")
        )
    if body["type"] != "container":
        problems.append(("type", f"{body['type']!r}: batch-fanout job definitions are 'container' jobs"))
    container = body.get("containerProperties")
    if container is None:
        problems.append(("", "missing required member 'containerProperties'"))
        return problems
    for required in ("image", "command", "resourceRequirements"):
        if required not in container:
            problems.append(("containerProperties", f"missing required member {required!r}"))
    problems.extend(_check_parameters(body, container))
    problems.extend(_check_resources(container))
    for index, variable in enumerate(container.get("environment", [])):
        if variable.get("name") in SUBMIT_TIME_ENVIRONMENT or variable.get("name", "").startswith(
            "AWS_BATCH_"
        ):
            where = join_key(join_index("containerProperties.environment", index), "name")
            problems.append((where, f"{variable['name']} is set per run at submit time, not in the spec"))
    retry = body.get("retryStrategy", {})
    attempts = retry.get("attempts")
    if attempts is not None and not 1 <= attempts <= 10:
        problems.append(("retryStrategy.attempts", f"{attempts} is not between 1 and 10"))
    rules = retry.get("evaluateOnExit", [])
    if len(rules) > 5:
        problems.append(("retryStrategy.evaluateOnExit", f"has {len(rules)} rules; AWS Batch allows 5"))
    for index, rule in enumerate(rules):
        where = join_index("retryStrategy.evaluateOnExit", index)
        if not set(EXIT_PATTERN_KEYS) & set(rule):
            problems.append((where, "needs one of onStatusReason, onReason or onExitCode"))
        for key in EXIT_PATTERN_KEYS:
            if key in rule and (problem := exit_pattern_problem(key, rule[key])) is not None:
                problems.append(
                    (join_key(where, key), f"{rule[key]!r} is not a pattern AWS Batch accepts: {problem}")
                )
    seconds = body.get("timeout", {}).get("attemptDurationSeconds")
    if seconds is not None and seconds < 60:
        problems.append(("timeout.attemptDurationSeconds", f"{seconds} is below the AWS minimum of 60"))
    if HASH_TAG in body.get("tags", {}):
        problems.append((join_key("tags", HASH_TAG), "is set by registration; remove it from the spec"))
    return problems


def _check_parameters(body: dict[str, Any], container: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    defaults = body.get("parameters", {})
    referenced = set()
    for index, argument in enumerate(container.get("command", [])):
        for parameter in _REF.findall(argument):
            referenced.add(parameter)
            if parameter not in defaults:
                where = join_index("containerProperties.command", index)
                problems.append(
                    (where, f"Ref::{parameter} has no default in 'parameters' (use 'none' for unset)")
                )
    for parameter in defaults:
        if parameter not in referenced:
            problems.append(
                (join_key("parameters", parameter), "is not referenced by the command (Ref::...)")
            )
    return problems


def _check_resources(container: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    seen = set()
    for index, requirement in enumerate(container.get("resourceRequirements", [])):
        where = join_index("containerProperties.resourceRequirements", index)
        kind = requirement["type"]
        if kind in seen:
            problems.append((join_key(where, "type"), f"{kind} is given more than once"))
        seen.add(kind)
        try:
            amount = float(requirement["value"])
        except ValueError:
            amount = -1.0
        if amount <= 0:
            problems.append((join_key(where, "value"), f"{requirement['value']!r} is not a positive number"))
    for kind in ("VCPU", "MEMORY"):
        if container.get("resourceRequirements") is not None and kind not in seen:
            problems.append(("containerProperties.resourceRequirements", f"missing a {kind} requirement"))
    return problems


def _check_unique_names(specs: list[SpecFile]) -> list[SpecProblem]:
    problems = []
    first_file: dict[tuple[str, str], str] = {}
    for spec in specs:
        key = (spec.kind, spec.name)
        if key in first_file:
            problems.append(
                SpecProblem(
                    spec.display, "", f"{spec.kind} {spec.name!r} is also defined in {first_file[key]}"
                )
            )
        else:
            first_file[key] = spec.display
    return problems
