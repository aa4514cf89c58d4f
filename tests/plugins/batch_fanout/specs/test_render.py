"""Rendering the job definitions: images from settings, the contract's commands and defaults, roles
and Fargate from settings, and a content hash that changes exactly when the content does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batch_fanout.specs import (
    HASH_TAG,
    RenderedJobDefinition,
    SpecError,
    SpecSettings,
    load_specs,
    render_job_definitions,
    spec_sha256,
)
from batch_fanout_project.pipeline import JOB_DEFINITIONS as JOB_DEFINITION_NAMES

LOCAL = SpecSettings(image_registry="local", image_tag="latest")


def rendered(specs_dir: Path, settings: SpecSettings = LOCAL) -> dict[str, RenderedJobDefinition]:
    return {
        definition.name: definition for definition in render_job_definitions(load_specs(specs_dir), settings)
    }


def test_images_follow_the_contract(specs_dir: Path) -> None:
    settings = SpecSettings(image_registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com", image_tag="0.1.0")
    images = {
        name: d.request["containerProperties"]["image"] for name, d in rendered(specs_dir, settings).items()
    }
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/batch-fanout"
    assert images == {
        "batch-fanout-leader": f"{registry}/leader:0.1.0",
        "batch-fanout-stress-ng": f"{registry}/stress_ng:0.1.0",
        "batch-fanout-shortest-path": f"{registry}/shortest_path:0.1.0",
        "batch-fanout-aggregator": f"{registry}/aggregator:0.1.0",
        "batch-fanout-step": f"{registry}/leader:0.1.0",
    }


def test_commands_are_exactly_the_contract(specs_dir: Path) -> None:
    definitions = rendered(specs_dir)
    commands = {
        name: " ".join(d.request["containerProperties"]["command"]) for name, d in definitions.items()
    }
    assert commands == {
        "batch-fanout-leader": "python -m leader --workloads Ref::workloads --tests Ref::tests "
        "--stress-duration Ref::stress_duration --stress-cpus Ref::stress_cpus --methods Ref::methods "
        "--exclude-methods Ref::exclude_methods --graph Ref::graph --grid Ref::grid "
        "--edge-probability Ref::edge_probability --seed Ref::seed --shards Ref::shards --origins Ref::origins",
        "batch-fanout-stress-ng": "python -m stress_follower",
        "batch-fanout-shortest-path": "python -m shortest_path --paths-for Ref::paths_for",
        "batch-fanout-aggregator": "python -m aggregator --tolerated-failures Ref::tolerated_failures",
        "batch-fanout-step": "python -m step --name Ref::name --after Ref::after "
        "--work-seconds Ref::work_seconds --summarize Ref::summarize",
    }
    assert definitions["batch-fanout-leader"].request["parameters"] == {
        "workloads": "stress,shortest_path",
        "tests": "4",
        "stress_duration": "5",
        "stress_cpus": "1",
        "methods": "all",
        "exclude_methods": "none",
        "graph": "generate",
        "grid": "64x64",
        "edge_probability": "0.7",
        "seed": "1",
        "shards": "4",
        "origins": "all",
    }
    assert definitions["batch-fanout-shortest-path"].request["parameters"] == {"paths_for": "none"}
    assert definitions["batch-fanout-aggregator"].request["parameters"] == {"tolerated_failures": "0"}


def test_resilience_settings_of_every_job(specs_dir: Path) -> None:
    definitions = rendered(specs_dir)
    assert sorted(definitions) == sorted(JOB_DEFINITION_NAMES)
    memory = {}
    for name, definition in definitions.items():
        request = definition.request
        assert request["retryStrategy"] == {
            "attempts": 3,
            "evaluateOnExit": [
                # The jobs' bad-input exit code is never retried (batch_fanout_job.errors).
                {"onExitCode": "65", "action": "EXIT"},
                {"onStatusReason": "Host EC2*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        }, name
        assert request["timeout"]["attemptDurationSeconds"] >= 60, name
        assert request["propagateTags"] is True, name
        assert request["containerProperties"]["logConfiguration"]["logDriver"] == "awslogs", name
        requirements = {r["type"]: r["value"] for r in request["containerProperties"]["resourceRequirements"]}
        assert requirements["VCPU"] == "1", name
        memory[name] = requirements["MEMORY"]
        variables = {v["name"] for v in request["containerProperties"].get("environment", [])}
        assert not variables & {"RESULTS_URI", "RUN_PREFIX"}, name
        assert "jobRoleArn" not in request["containerProperties"], name
    assert memory == {
        "batch-fanout-leader": "1024",
        "batch-fanout-stress-ng": "512",
        "batch-fanout-shortest-path": "2048",
        "batch-fanout-aggregator": "1024",
        "batch-fanout-step": "512",
    }


def test_hash_is_kept_as_a_tag_and_ignores_key_order(specs_dir: Path) -> None:
    definition = rendered(specs_dir)["batch-fanout-leader"]
    assert definition.request["tags"][HASH_TAG] == definition.sha256
    reordered = dict(reversed(list(definition.request.items())))
    assert spec_sha256(reordered) == definition.sha256


def test_hash_changes_with_content_and_image_settings(specs_dir: Path, edit_spec: Any) -> None:
    before = rendered(specs_dir)
    other_tag = rendered(specs_dir, SpecSettings(image_registry="local", image_tag="v2"))
    assert all(other_tag[name].sha256 != before[name].sha256 for name in before)

    edit_spec("stress_ng.yaml", lambda body: body["timeout"].update(attemptDurationSeconds=901))
    after = rendered(specs_dir)
    changed = {name for name in before if before[name].sha256 != after[name].sha256}
    assert changed == {"batch-fanout-stress-ng"}


def test_roles_come_from_settings(specs_dir: Path) -> None:
    settings = SpecSettings(
        image_registry="local",
        image_tag="latest",
        job_role_arn="arn:aws:iam::123456789012:role/job",
        execution_role_arn="arn:aws:iam::123456789012:role/execution",
    )
    container = rendered(specs_dir, settings)["batch-fanout-aggregator"].request["containerProperties"]
    assert container["jobRoleArn"] == "arn:aws:iam::123456789012:role/job"
    assert container["executionRoleArn"] == "arn:aws:iam::123456789012:role/execution"


def test_fargate_platform_adapts_the_definitions(specs_dir: Path) -> None:
    settings = SpecSettings(
        image_registry="local",
        image_tag="latest",
        execution_role_arn="arn:aws:iam::123456789012:role/execution",
        platform="FARGATE",
    )
    stress = rendered(specs_dir, settings)["batch-fanout-stress-ng"].request
    assert stress["platformCapabilities"] == ["FARGATE"]
    assert stress["containerProperties"]["networkConfiguration"] == {"assignPublicIp": "ENABLED"}
    # 512 MiB is below Fargate's smallest memory for 1 vCPU.
    requirements = {r["type"]: r["value"] for r in stress["containerProperties"]["resourceRequirements"]}
    assert requirements == {"VCPU": "1", "MEMORY": "2048"}


def test_fargate_without_an_execution_role_is_an_error(specs_dir: Path) -> None:
    settings = SpecSettings.from_environment(
        {}, image_registry="local", image_tag="latest", platform="FARGATE"
    )
    with pytest.raises(SpecError) as caught:
        render_job_definitions(load_specs(specs_dir), settings)
    assert str(caught.value.problems[0]) == (
        "specs/job-definitions/aggregator.yaml: containerProperties.executionRoleArn: Fargate needs an "
        "execution role (--execution-role-arn or the environment variable BATCH_FANOUT_EXECUTION_ROLE_ARN)"
    )


def test_settings_from_environment_yield_to_flags() -> None:
    environ = {"BATCH_FANOUT_IMAGE_REGISTRY": "from-env", "BATCH_FANOUT_IMAGE_TAG": "env-tag"}
    settings = SpecSettings.from_environment(environ, image_registry="from-flag")
    assert (settings.image_registry, settings.image_tag, settings.platform) == ("from-flag", "env-tag", "EC2")
