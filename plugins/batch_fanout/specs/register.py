"""Register job definitions idempotently.

A registered revision carries the content hash of its spec as the tag ``batch-fanout:spec-sha256``.
Registering again looks up the ACTIVE revisions of the name (DescribeJobDefinitions) and reuses the
newest one whose tag matches; only a changed spec gets a new revision. The result maps each name to
``name:revision``, which a DAG run pins for all its jobs, so a deploy in the middle of a run never
changes what the run executes.

Works with any boto3 ``batch`` client: AWS or the local endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_fanout.specs.loader import HASH_TAG, load_specs
from batch_fanout.specs.model import join_index, join_key
from batch_fanout.specs.render import RenderedJobDefinition, SpecSettings, render_job_definitions

log = logging.getLogger(__name__)

UNCHANGED = "unchanged"
REGISTERED = "registered"
WOULD_REGISTER = "would register"


@dataclass(frozen=True)
class RegistrationOutcome:
    """What happened (or, in a dry run, would happen) to one job definition.

    :param name: the job definition name
    :param action: ``unchanged``, ``registered`` or ``would register``
    :param revision: the revision to pin; ``None`` for ``would register``
    :param previous_revision: the newest ACTIVE revision before this call, if any
    :param changes: for a new revision, how it differs from the previous one (``path: old -> new``)
    """

    name: str
    action: str
    revision: int | None
    previous_revision: int | None = None
    changes: list[str] = field(default_factory=list)

    @property
    def pinned(self) -> str | None:
        """``name:revision``, or ``None`` when nothing is registered yet (dry run)."""
        return None if self.revision is None else f"{self.name}:{self.revision}"

    def describe(self) -> str:
        """One line (and the changes below it) for people."""
        if self.action == UNCHANGED:
            return f"unchanged       {self.pinned}"
        before = f"revision {self.previous_revision}" if self.previous_revision else "no ACTIVE revision"
        if self.action == REGISTERED:
            head = f"registered      {self.pinned} (was {before})"
        else:
            head = f"would register  {self.name} (now {before})"
        return "\n".join([head, *(f"    {change}" for change in self.changes)])


def active_revisions(client: Any, name: str) -> list[dict[str, Any]]:
    """Every ACTIVE revision of a job definition, newest first."""
    paginator = client.get_paginator("describe_job_definitions")
    revisions: list[dict[str, Any]] = []
    for page in paginator.paginate(jobDefinitionName=name, status="ACTIVE"):
        revisions.extend(page.get("jobDefinitions", []))
    return sorted(revisions, key=lambda definition: int(definition["revision"]), reverse=True)


def register_rendered(
    client: Any, definitions: Iterable[RenderedJobDefinition], *, dry_run: bool = False
) -> list[RegistrationOutcome]:
    """Register each rendered job definition unless an ACTIVE revision has the same content hash.

    :param client: a boto3 ``batch`` client
    :param definitions: rendered, valid job definitions
    :param dry_run: look up only; register nothing
    """
    outcomes = []
    for definition in definitions:
        revisions = active_revisions(client, definition.name)
        previous = revisions[0] if revisions else None
        previous_revision = int(previous["revision"]) if previous else None
        matching = [
            revision
            for revision in revisions
            if (revision.get("tags") or {}).get(HASH_TAG) == definition.sha256
        ]
        if matching:
            outcome = RegistrationOutcome(
                definition.name, UNCHANGED, int(matching[0]["revision"]), previous_revision
            )
        else:
            changes = describe_changes(previous, definition.request)
            if dry_run:
                outcome = RegistrationOutcome(
                    definition.name, WOULD_REGISTER, None, previous_revision, changes
                )
            else:
                response = client.register_job_definition(**definition.request)
                outcome = RegistrationOutcome(
                    definition.name, REGISTERED, int(response["revision"]), previous_revision, changes
                )
                log.info("Registered %s (spec sha256 %s)", outcome.pinned, definition.sha256)
        outcomes.append(outcome)
    return outcomes


def register_job_definitions(
    client: Any,
    settings: SpecSettings,
    specs_dir: Path | None = None,
    *,
    dry_run: bool = False,
) -> list[RegistrationOutcome]:
    """Load, validate and render every spec, then register the job definitions.

    Every spec is checked before the first call, so an invalid one means nothing is registered.

    :param client: a boto3 ``batch`` client (AWS or the local endpoint)
    :param settings: image registry and tag, roles, platform
    :param specs_dir: the specs directory; ``include/specs`` by default
    :param dry_run: look up only; register nothing
    :raises SpecError: when any spec is invalid
    """
    specs = load_specs(specs_dir)
    rendered = render_job_definitions(specs, settings)
    return register_rendered(client, rendered, dry_run=dry_run)


def pinned_map(outcomes: Iterable[RegistrationOutcome]) -> dict[str, str]:
    """``{name: "name:revision"}`` for every registered or reused job definition."""
    return {outcome.name: outcome.pinned for outcome in outcomes if outcome.pinned is not None}


def describe_changes(previous: dict[str, Any] | None, request: dict[str, Any]) -> list[str]:
    """How a new request differs from the registered revision it would supersede.

    Only the members the spec sets are compared: AWS fills in defaults (empty lists, ``status``,
    ARNs) that a spec never states.
    """
    if previous is None:
        return ["new job definition"]
    changes: list[str] = []
    _diff(previous, request, "", changes)
    return changes or ["members AWS does not return differ (the spec hash changed)"]


def _is_empty(value: Any) -> bool:
    return value is None or value in ([], {})


def _diff(old: Any, new: Any, path: str, changes: list[str]) -> None:
    if path == join_key("tags", HASH_TAG):
        return
    if isinstance(new, dict) and isinstance(old, dict):
        for key, value in new.items():
            _diff(old.get(key), value, join_key(path, key), changes)
        for key, value in old.items():
            if key not in new and path in ("tags", "parameters") and not _is_empty(value):
                changes.append(f"{join_key(path, key)}: {value!r} -> (removed)")
        return
    if isinstance(new, list) and isinstance(old, list) and len(old) == len(new):
        for index, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
            _diff(old_item, new_item, join_index(path, index), changes)
        return
    if old != new and not (_is_empty(old) and _is_empty(new)):
        changes.append(f"{path}: {_short(old)} -> {_short(new)}")


def _short(value: Any, limit: int = 80) -> str:
    if value is None:
        return "(unset)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
