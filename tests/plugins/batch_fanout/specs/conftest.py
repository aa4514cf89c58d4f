"""Fixtures for the spec tests: a private copy of the project's specs that a test may break."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_SPECS = Path(__file__).resolve().parents[4] / "include" / "specs"


@pytest.fixture
def specs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``include/specs`` (without the CloudFormation templates) at ``./specs``: the current
    directory is the test's own, so messages name files as ``specs/job-definitions/...``."""
    monkeypatch.chdir(tmp_path)
    for variable in ("IMAGE_REGISTRY", "IMAGE_TAG", "JOB_ROLE_ARN", "EXECUTION_ROLE_ARN", "PLATFORM"):
        monkeypatch.delenv(f"BATCH_FANOUT_{variable}", raising=False)
    target = tmp_path / "specs"
    shutil.copytree(PROJECT_SPECS, target, ignore=shutil.ignore_patterns("cloudformation"))
    return target


@pytest.fixture
def edit_spec(specs_dir: Path) -> Callable[[str, Callable[[dict[str, Any]], None]], Path]:
    """Change one job-definition spec in place: ``edit_spec("leader.yaml", change)``."""

    def edit(file_name: str, change: Callable[[dict[str, Any]], None]) -> Path:
        path = specs_dir / "job-definitions" / file_name
        body = yaml.safe_load(path.read_text())
        change(body)
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        return path

    return edit


@pytest.fixture
def unique_specs_dir(specs_dir: Path) -> Path:
    """The project's specs with every job definition renamed ``<name>-<random>``, so that tests on the
    session's shared local endpoint never see each other's revisions."""
    suffix = uuid.uuid4().hex[:10]
    for path in sorted((specs_dir / "job-definitions").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        body["jobDefinitionName"] = f"{body['jobDefinitionName']}-{suffix}"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
    return specs_dir


def active_revisions(batch_client: Any, name: str) -> list[int]:
    """The ACTIVE revisions of a job definition on the endpoint, oldest first."""
    found = batch_client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    return sorted(int(definition["revision"]) for definition in found)


@pytest.fixture
def revisions_of(batch_client: Any) -> Callable[[str], list[int]]:
    return lambda name: active_revisions(batch_client, name)
