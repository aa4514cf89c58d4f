"""Idempotent registration against the real local AWS Batch endpoint, over HTTP with boto3, and the
``batch-fanout specs`` commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_fanout.specs import (
    SpecError,
    SpecSettings,
    pinned_map,
    register_job_definitions,
)
from batch_fanout.specs.register import REGISTERED, UNCHANGED, WOULD_REGISTER
from batch_fanout_project.pipeline import JOB_DEFINITIONS as JOB_DEFINITION_NAMES

LOCAL = SpecSettings(image_registry="local", image_tag="latest")


def names_in(specs_dir: Path) -> list[str]:
    return sorted(
        yaml.safe_load(path.read_text())["jobDefinitionName"]
        for path in (specs_dir / "job-definitions").glob("*.yaml")
    )


def test_registering_twice_adds_no_revision(
    batch_client: Any, unique_specs_dir: Path, revisions_of: Callable[[str], list[int]]
) -> None:
    first = register_job_definitions(batch_client, LOCAL, unique_specs_dir)
    second = register_job_definitions(batch_client, LOCAL, unique_specs_dir)

    assert [o.action for o in first] == [REGISTERED] * len(JOB_DEFINITION_NAMES)
    assert [o.action for o in second] == [UNCHANGED] * len(JOB_DEFINITION_NAMES)
    assert (
        pinned_map(second) == pinned_map(first) == {name: f"{name}:1" for name in names_in(unique_specs_dir)}
    )
    assert {name: revisions_of(name) for name in names_in(unique_specs_dir)} == {
        name: [1] for name in names_in(unique_specs_dir)
    }


def test_a_changed_spec_gets_exactly_one_new_revision(
    batch_client: Any, unique_specs_dir: Path, revisions_of: Callable[[str], list[int]]
) -> None:
    register_job_definitions(batch_client, LOCAL, unique_specs_dir)
    path = unique_specs_dir / "job-definitions" / "shortest_path.yaml"
    body = yaml.safe_load(path.read_text())
    body["parameters"]["paths_for"] = "0,1"
    path.write_text(yaml.safe_dump(body, sort_keys=False))

    changed = {o.name: o for o in register_job_definitions(batch_client, LOCAL, unique_specs_dir)}
    again = {o.name: o for o in register_job_definitions(batch_client, LOCAL, unique_specs_dir)}

    name = body["jobDefinitionName"]
    assert {n: o.action for n, o in changed.items() if o.action != UNCHANGED} == {name: REGISTERED}
    assert changed[name].pinned == f"{name}:2"
    assert changed[name].changes == ["parameters.paths_for: 'none' -> '0,1'"]
    assert again[name].action == UNCHANGED and again[name].pinned == f"{name}:2"
    assert revisions_of(name) == [1, 2]
    registered = batch_client.describe_job_definitions(jobDefinitions=[f"{name}:2"])["jobDefinitions"]
    assert registered[0]["parameters"] == {"paths_for": "0,1"}
    others = [n for n in names_in(unique_specs_dir) if n != name]
    assert {n: revisions_of(n) for n in others} == {n: [1] for n in others}


def test_a_new_image_tag_is_a_new_revision_of_every_job(
    batch_client: Any, unique_specs_dir: Path, revisions_of: Callable[[str], list[int]]
) -> None:
    register_job_definitions(batch_client, LOCAL, unique_specs_dir)
    retagged = register_job_definitions(
        batch_client, SpecSettings(image_registry="local", image_tag="v2"), unique_specs_dir
    )
    assert [o.action for o in retagged] == [REGISTERED] * len(JOB_DEFINITION_NAMES)
    assert all(
        o.changes == [f"containerProperties.image: {_image(o.name, 'latest')!r} -> {_image(o.name, 'v2')!r}"]
        for o in retagged
    )


def _image(job_definition_name: str, tag: str) -> str:
    folder = {
        "batch-fanout-leader": "leader",
        "batch-fanout-stress-ng": "stress_ng",
        "batch-fanout-shortest-path": "shortest_path",
        "batch-fanout-aggregator": "aggregator",
        "batch-fanout-step": "leader",
    }[job_definition_name.rsplit("-", 1)[0]]
    return f"local/batch-fanout/{folder}:{tag}"


def test_dry_run_changes_nothing(
    batch_client: Any, unique_specs_dir: Path, revisions_of: Callable[[str], list[int]]
) -> None:
    never_registered = register_job_definitions(batch_client, LOCAL, unique_specs_dir, dry_run=True)
    assert [o.action for o in never_registered] == [WOULD_REGISTER] * len(JOB_DEFINITION_NAMES)
    assert all(revisions_of(name) == [] for name in names_in(unique_specs_dir))

    register_job_definitions(batch_client, LOCAL, unique_specs_dir)
    path = unique_specs_dir / "job-definitions" / "aggregator.yaml"
    path.write_text(path.read_text().replace("attemptDurationSeconds: 1800", "attemptDurationSeconds: 2400"))
    preview = {
        o.name: o for o in register_job_definitions(batch_client, LOCAL, unique_specs_dir, dry_run=True)
    }

    name = next(n for n in preview if n.startswith("batch-fanout-aggregator"))
    assert preview[name].action == WOULD_REGISTER
    assert preview[name].changes == ["timeout.attemptDurationSeconds: 1800 -> 2400"]
    assert {n: o.action for n, o in preview.items() if n != name} == {
        n: UNCHANGED for n in preview if n != name
    }
    assert all(revisions_of(n) == [1] for n in names_in(unique_specs_dir))


def test_an_invalid_spec_registers_nothing(
    batch_client: Any, unique_specs_dir: Path, revisions_of: Callable[[str], list[int]]
) -> None:
    path = unique_specs_dir / "job-definitions" / "stress_ng.yaml"
    path.write_text(path.read_text().replace("logDriver: awslogs", "logDriver: cloudwatch"))
    with pytest.raises(SpecError, match=r"stress_ng\.yaml: containerProperties\.logConfiguration\.logDriver"):
        register_job_definitions(batch_client, LOCAL, unique_specs_dir)
    assert all(revisions_of(name) == [] for name in names_in(unique_specs_dir))


def batch_fanout(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would."""
    script = Path(sys.executable).with_name("batch-fanout")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd, env=env
    )


def test_cli_register_dry_run_and_json(
    batch_endpoint: Any, unique_specs_dir: Path, revisions_of: Callable[[str], list[int]]
) -> None:
    common = [
        "--specs-dir",
        str(unique_specs_dir),
        "--endpoint-url",
        batch_endpoint.url,
        "--region",
        "us-east-1",
    ]
    images = ["--image-registry", "local", "--image-tag", "latest"]
    names = names_in(unique_specs_dir)
    # The endpoint's credentials, as `eval "$(batch-fanout local env)"` gives them to a user's shell.
    env = {**os.environ, **batch_endpoint.env()}

    dry = batch_fanout(
        "specs", "register", "--dry-run", *common, *images, cwd=unique_specs_dir.parent, env=env
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would register  batch-fanout-") == len(JOB_DEFINITION_NAMES)
    assert dry.stdout.rstrip().endswith("dry run: nothing was registered")
    assert all(revisions_of(name) == [] for name in names)

    registered = batch_fanout(
        "specs", "register", "--json", *common, *images, cwd=unique_specs_dir.parent, env=env
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout) == {name: f"{name}:1" for name in names}

    again = batch_fanout("specs", "register", *common, *images, cwd=unique_specs_dir.parent, env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.split()) == sorted(
        ["unchanged"] * len(JOB_DEFINITION_NAMES) + [f"{name}:1" for name in names]
    )

    missing_tag = batch_fanout(
        "specs", "register", *common, "--image-registry", "local", cwd=unique_specs_dir.parent, env=env
    )
    assert missing_tag.returncode == 1
    assert (
        "specs/job-definitions/leader.yaml: containerProperties.image: needs the setting image_tag, which is not "
        "set (--image-tag or the environment variable BATCH_FANOUT_IMAGE_TAG)"
    ) in missing_tag.stderr
    assert all(revisions_of(name) == [1] for name in names)


def test_cli_validate(unique_specs_dir: Path) -> None:
    from batch_fanout.cli import main

    ok = batch_fanout_in_process(main, "specs", "validate", "--specs-dir", str(unique_specs_dir))
    assert ok == 0
    path = unique_specs_dir / "job-definitions" / "leader.yaml"
    path.write_text(path.read_text().replace("type: container", "type: containers"))
    assert batch_fanout_in_process(main, "specs", "validate", "--specs-dir", str(unique_specs_dir)) == 1


def batch_fanout_in_process(main: Any, *args: str) -> int:
    return int(main([*args, "--image-registry", "local", "--image-tag", "latest"]))
