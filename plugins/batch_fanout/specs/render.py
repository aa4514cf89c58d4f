"""Turn a job-definition spec into the exact RegisterJobDefinition request, and hash it.

Spec files name their image as ``${image_registry}/batch-fanout/<name>:${image_tag}``; the registry
and tag come from settings, so one file serves AWS (an ECR registry and a release tag) and the local
endpoint (registry ``local``, tag ``latest``). The roles of an AWS deployment and the Fargate platform
are added from settings too, never written into the files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batch_fanout.specs.errors import SpecError, SpecProblem
from batch_fanout.specs.loader import HASH_TAG, SpecFile
from batch_fanout.specs.model import join_index, join_key

PLATFORMS = ("EC2", "FARGATE")

# Settings a spec may reference as ``${name}``.
PLACEHOLDER_SETTINGS = ("image_registry", "image_tag")

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# What AWS Batch accepts in an image name (plus '@' for a digest).
_IMAGE = re.compile(r"^[A-Za-z0-9._/:#@-]{1,255}$")

# Fargate's valid memory (MiB) for each vCPU value.
_FARGATE_MEMORY = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4097, 1024)),
    1.0: tuple(range(2048, 8193, 1024)),
    2.0: tuple(range(4096, 16385, 1024)),
    4.0: tuple(range(8192, 30721, 1024)),
    8.0: tuple(range(16384, 61441, 4096)),
    16.0: tuple(range(32768, 122881, 8192)),
}


@dataclass(frozen=True)
class SpecSettings:
    """The deployment settings specs are rendered with.

    :param image_registry: the registry part of every image, e.g.
        ``123456789012.dkr.ecr.us-east-1.amazonaws.com``, or ``local`` for the local endpoint
    :param image_tag: the tag of every image, e.g. ``0.1.0``, or ``latest`` for the local endpoint
    :param job_role_arn: the IAM role the jobs run as (AWS); added to every job definition when set
    :param execution_role_arn: the role that pulls images and writes logs (AWS); required on Fargate
    :param platform: ``EC2`` (the spec files as written) or ``FARGATE``
    :param sources: for each setting, how the user sets it; used in error messages
    """

    image_registry: str | None = None
    image_tag: str | None = None
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    platform: str = "EC2"
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **overrides: str | None
    ) -> SpecSettings:
        """Settings from ``BATCH_FANOUT_<SETTING>`` environment variables, overridden by the given
        values (command-line flags) where those are not ``None``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources = {}
        for name in ("image_registry", "image_tag", "job_role_arn", "execution_role_arn", "platform"):
            flag = "--" + name.replace("_", "-")
            variable = "BATCH_FANOUT_" + name.upper()
            sources[name] = f"{flag} or the environment variable {variable}"
            value = overrides.get(name)
            if value is None:
                value = environ.get(variable) or None
            if value is not None:
                values[name] = value
        return cls(**values, sources=sources)

    def how_to_set(self, name: str) -> str:
        return self.sources.get(name, f"the setting {name}")


@dataclass(frozen=True)
class RenderedJobDefinition:
    """A job definition ready to register.

    :param name: the job definition name
    :param display: the spec file it came from, for messages
    :param request: the RegisterJobDefinition request, hash tag included
    :param sha256: the content hash of the request without the hash tag
    """

    name: str
    display: str
    request: dict[str, Any]
    sha256: str


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal content, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_sha256(request: Mapping[str, Any]) -> str:
    """The content hash of a rendered request; the hash tag itself is left out of it."""
    content = copy.deepcopy(dict(request))
    tags = content.get("tags")
    if isinstance(tags, dict):
        tags.pop(HASH_TAG, None)
        if not tags:
            del content["tags"]
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def render_job_definitions(specs: list[SpecFile], settings: SpecSettings) -> list[RenderedJobDefinition]:
    """Render every job-definition spec; all problems of all files are reported together.

    :param specs: parsed and checked specs (other kinds are skipped)
    :param settings: registry, tag, roles and platform
    :raises SpecError: when a spec references a setting that is missing or unknown
    """
    problems: list[SpecProblem] = []
    rendered = []
    if settings.platform not in PLATFORMS:
        problems.append(
            SpecProblem(
                "settings",
                "platform",
                f"{settings.platform!r} is not one of {', '.join(PLATFORMS)} "
                f"(set with {settings.how_to_set('platform')})",
            )
        )
        raise SpecError(problems)
    for spec in specs:
        if spec.kind != "job-definition":
            continue
        body, file_problems = _render(spec, settings)
        problems.extend(SpecProblem(spec.display, where, message) for where, message in file_problems)
        if file_problems:
            continue
        digest = spec_sha256(body)
        request = copy.deepcopy(body)
        request["tags"] = {**request.get("tags", {}), HASH_TAG: digest}
        rendered.append(RenderedJobDefinition(spec.name, spec.display, request, digest))
    if problems:
        raise SpecError(problems)
    return rendered


def _render(spec: SpecFile, settings: SpecSettings) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    body = _substitute(spec.body, "", settings, problems)
    if problems:
        return body, problems
    container = body["containerProperties"]
    image = container["image"]
    if not _IMAGE.match(image):
        problems.append(("containerProperties.image", f"{image!r} is not a valid image name"))
    if settings.job_role_arn:
        container["jobRoleArn"] = settings.job_role_arn
    if settings.execution_role_arn:
        container["executionRoleArn"] = settings.execution_role_arn
    if settings.platform == "FARGATE":
        problems.extend(_to_fargate(body, settings))
    return body, problems


def _substitute(value: Any, path: str, settings: SpecSettings, problems: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {
            key: _substitute(item, join_key(path, key), settings, problems) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_substitute(item, join_index(path, i), settings, problems) for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDER_SETTINGS:
            known = ", ".join(PLACEHOLDER_SETTINGS)
            problems.append((path, f"unknown setting ${{{name}}} (known: {known})"))
            return match.group(0)
        setting = getattr(settings, name)
        if not setting:
            problems.append(
                (path, f"needs the setting {name}, which is not set ({settings.how_to_set(name)})")
            )
            return match.group(0)
        return str(setting)

    return _PLACEHOLDER.sub(replace, value)


def _to_fargate(body: dict[str, Any], settings: SpecSettings) -> list[tuple[str, str]]:
    """Fargate needs its platform capability, a public IP to reach ECR from a public subnet, an
    execution role, and one of its fixed vCPU/memory combinations (memory is raised to the nearest)."""
    problems = []
    container = body["containerProperties"]
    body["platformCapabilities"] = ["FARGATE"]
    container["networkConfiguration"] = {"assignPublicIp": "ENABLED"}
    container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
    if not settings.execution_role_arn:
        problems.append(
            (
                "containerProperties.executionRoleArn",
                f"Fargate needs an execution role ({settings.how_to_set('execution_role_arn')})",
            )
        )
    requirements = container["resourceRequirements"]
    values = {requirement["type"]: requirement for requirement in requirements}
    vcpus = float(values["VCPU"]["value"])
    allowed = _FARGATE_MEMORY.get(vcpus)
    if allowed is None:
        where = join_key(
            join_index("containerProperties.resourceRequirements", requirements.index(values["VCPU"])),
            "value",
        )
        problems.append(
            (where, f"{vcpus:g} vCPU is not a Fargate size ({', '.join(f'{v:g}' for v in _FARGATE_MEMORY)})")
        )
        return problems
    memory = math.ceil(float(values["MEMORY"]["value"]))
    fitting = [candidate for candidate in allowed if candidate >= memory]
    if not fitting:
        where = join_key(
            join_index("containerProperties.resourceRequirements", requirements.index(values["MEMORY"])),
            "value",
        )
        problems.append((where, f"{memory} MiB is more than Fargate allows with {vcpus:g} vCPU"))
        return problems
    values["MEMORY"]["value"] = str(fitting[0])
    return problems
