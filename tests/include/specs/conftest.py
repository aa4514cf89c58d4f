"""Fixtures of the job-definition tests."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml

PROJECT_SPECS = Path(__file__).resolve().parents[3] / "include" / "specs"


@pytest.fixture
def own_specs(tmp_path: Path) -> Path:
    """The project's specs with the job definitions renamed ``<name>-<random>`` (the endpoint is shared)."""
    target = tmp_path / "specs"
    shutil.copytree(PROJECT_SPECS, target, ignore=shutil.ignore_patterns("cloudformation"))
    suffix = uuid.uuid4().hex[:10]
    for path in (target / "job-definitions").glob("*.yaml"):
        body = yaml.safe_load(path.read_text())
        body["jobDefinitionName"] = f"{body['jobDefinitionName']}-{suffix}"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
    return target
