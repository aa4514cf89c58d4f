"""Validation of specs against botocore's AWS Batch model and the project's rules: every problem is
reported with its file and the path inside it, all files at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batch_fanout.specs import (
    SpecError,
    SpecSettings,
    load_specs,
    render_job_definitions,
)
from batch_fanout_project.pipeline import JOB_DEFINITIONS as JOB_DEFINITION_NAMES

LOCAL = SpecSettings(image_registry="local", image_tag="latest")


def problems_of(specs_dir: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        render_job_definitions(load_specs(specs_dir), LOCAL)
    return [str(problem) for problem in caught.value.problems]


def test_project_specs_are_valid(specs_dir: Path) -> None:
    specs = load_specs(specs_dir)
    kinds = sorted((spec.kind, spec.name) for spec in specs)
    assert kinds == [
        ("compute-environment", "batch-fanout-ce"),
        ("job-definition", "batch-fanout-aggregator"),
        ("job-definition", "batch-fanout-leader"),
        ("job-definition", "batch-fanout-shortest-path"),
        ("job-definition", "batch-fanout-step"),
        ("job-definition", "batch-fanout-stress-ng"),
        ("job-queue", "batch-fanout-queue"),
    ]


def test_unknown_member_is_named_with_a_suggestion(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("leader.yaml", lambda body: body["containerProperties"].update(imag="x"))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/leader.yaml: containerProperties.imag: unknown member 'imag'; "
        "did you mean 'image'?"
    ]


def test_wrong_type_is_named(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("stress_ng.yaml", lambda body: body["retryStrategy"].update(attempts="3"))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/stress_ng.yaml: retryStrategy.attempts: expected an integer, got string '3'"
    ]


def test_unquoted_number_where_aws_wants_a_string(specs_dir: Path) -> None:
    path = specs_dir / "job-definitions" / "aggregator.yaml"
    path.write_text(path.read_text().replace('{type: MEMORY, value: "1024"}', "{type: MEMORY, value: 1024}"))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/aggregator.yaml: containerProperties.resourceRequirements[1].value: "
        "expected a string, got integer 1024"
    ]


def test_missing_required_member_is_named(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("leader.yaml", lambda body: body["retryStrategy"]["evaluateOnExit"][0].pop("action"))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/leader.yaml: retryStrategy.evaluateOnExit[0]: missing required member 'action'"
    ]


def test_retry_patterns_aws_refuses_are_named(specs_dir: Path, edit_spec: Any) -> None:
    def edit(body: dict[str, Any]) -> None:
        rules = body["retryStrategy"]["evaluateOnExit"]
        rules[0]["onExitCode"] = "6*5"
        # As Spot's status reason reads, but AWS's pattern takes no parentheses.
        rules[1]["onStatusReason"] = "Host EC2 (instance*"

    edit_spec("leader.yaml", edit)
    where = "specs/job-definitions/leader.yaml: retryStrategy.evaluateOnExit"
    assert problems_of(specs_dir) == [
        f"{where}[0].onExitCode: '6*5' is not a pattern AWS Batch accepts: an asterisk (*) may only end it; "
        "it can contain only numbers, optionally ending with an asterisk (*)",
        f"{where}[1].onStatusReason: 'Host EC2 (instance*' is not a pattern AWS Batch accepts: '(' is not "
        "allowed; it can contain only letters, numbers, periods (.), colons (:) and white space, optionally "
        "ending with an asterisk (*)",
    ]


def test_invalid_enum_value_lists_the_allowed_ones(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec(
        "leader.yaml", lambda body: body["containerProperties"]["resourceRequirements"][0].update(type="GPUS")
    )
    assert problems_of(specs_dir) == [
        "specs/job-definitions/leader.yaml: containerProperties.resourceRequirements[0].type: "
        "'GPUS' is not one of GPU, VCPU, MEMORY"
    ]


def test_problems_of_every_file_are_reported_together(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("leader.yaml", lambda body: body.update(propagateTags="yes"))
    edit_spec(
        "shortest_path.yaml",
        lambda body: body["containerProperties"]["logConfiguration"].update(logDriver="cloudwatch"),
    )
    assert problems_of(specs_dir) == [
        "specs/job-definitions/leader.yaml: propagateTags: expected true or false, got string 'yes'",
        "specs/job-definitions/shortest_path.yaml: containerProperties.logConfiguration.logDriver: "
        "'cloudwatch' is not one of json-file, syslog, journald, gelf, fluentd, awslogs, splunk, awsfirelens",
    ]


def test_invalid_yaml_names_file_line_and_column(specs_dir: Path) -> None:
    path = specs_dir / "job-definitions" / "leader.yaml"
    path.write_text("jobDefinitionName: batch-fanout-leader\ntype: [container\n")
    (problem,) = problems_of(specs_dir)
    assert problem.startswith("specs/job-definitions/leader.yaml: invalid YAML at line 3, column 1:")


def test_duplicate_yaml_key_is_rejected(specs_dir: Path) -> None:
    path = specs_dir / "job-definitions" / "leader.yaml"
    path.write_text(path.read_text() + "propagateTags: false\n")
    (problem,) = problems_of(specs_dir)
    assert problem.startswith("specs/job-definitions/leader.yaml: invalid YAML at line")
    assert "duplicate key 'propagateTags'" in problem


def test_invalid_json_names_file_line_and_column(specs_dir: Path) -> None:
    (specs_dir / "job-queues" / "extra.json").write_text('{"jobQueueName": "q", "priority": 1,}')
    (problem,) = problems_of(specs_dir)
    # The wording after the position is the json module's own and varies between Python versions.
    assert problem.startswith("specs/job-queues/extra.json: invalid JSON at line 1, column 37: ")


def test_a_json_spec_is_checked_like_a_yaml_one(specs_dir: Path) -> None:
    (specs_dir / "job-queues" / "extra.json").write_text('{"jobQueueName": "extra", "priority": "high"}')
    assert problems_of(specs_dir) == [
        "specs/job-queues/extra.json: priority: expected an integer, got string 'high'"
    ]


def test_missing_image_setting_names_file_path_and_how_to_set_it(specs_dir: Path) -> None:
    specs = load_specs(specs_dir)
    with pytest.raises(SpecError) as caught:
        render_job_definitions(specs, SpecSettings.from_environment({}, image_registry="local"))
    problems = [str(problem) for problem in caught.value.problems]
    assert len(problems) == len(JOB_DEFINITION_NAMES)
    assert problems[0] == (
        "specs/job-definitions/aggregator.yaml: containerProperties.image: needs the setting image_tag, "
        "which is not set (--image-tag or the environment variable BATCH_FANOUT_IMAGE_TAG)"
    )


def test_unknown_setting_reference_is_named(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("leader.yaml", lambda body: body["containerProperties"].update(image="${registry}/leader:1"))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/leader.yaml: containerProperties.image: unknown setting ${registry} "
        "(known: image_registry, image_tag)"
    ]


def test_ref_parameter_without_default_is_named(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("aggregator.yaml", lambda body: body.pop("parameters"))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/aggregator.yaml: containerProperties.command[4]: Ref::tolerated_failures has "
        "no default in 'parameters' (use 'none' for unset)"
    ]


def test_results_location_in_the_spec_is_rejected(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec(
        "stress_ng.yaml",
        lambda body: body["containerProperties"]["environment"].append(
            {"name": "RESULTS_URI", "value": "s3://b"}
        ),
    )
    assert problems_of(specs_dir) == [
        "specs/job-definitions/stress_ng.yaml: containerProperties.environment[1].name: RESULTS_URI is set "
        "per run at submit time, not in the spec"
    ]


def test_timeout_below_the_aws_minimum_is_rejected(specs_dir: Path, edit_spec: Any) -> None:
    edit_spec("stress_ng.yaml", lambda body: body["timeout"].update(attemptDurationSeconds=30))
    assert problems_of(specs_dir) == [
        "specs/job-definitions/stress_ng.yaml: timeout.attemptDurationSeconds: 30 is below the AWS minimum of 60"
    ]


def test_same_name_in_two_files_is_rejected(specs_dir: Path) -> None:
    source = specs_dir / "job-definitions" / "leader.yaml"
    (specs_dir / "job-definitions" / "leader-copy.yaml").write_text(source.read_text())
    assert problems_of(specs_dir) == [
        "specs/job-definitions/leader.yaml: job-definition 'batch-fanout-leader' is also defined in "
        "specs/job-definitions/leader-copy.yaml"
    ]


def test_a_file_that_is_not_a_spec_is_named(specs_dir: Path) -> None:
    (specs_dir / "job-definitions" / "notes.txt").write_text("to do")
    assert problems_of(specs_dir) == [
        "specs/job-definitions/notes.txt: not a spec file (expected a name ending .yaml, .yml, .json)"
    ]


def test_compute_environment_spec_is_checked_too(specs_dir: Path) -> None:
    path = specs_dir / "compute-environments" / "batch-fanout-ce.yaml"
    path.write_text(path.read_text().replace("type: EC2", "type: GPU"))
    (problem,) = problems_of(specs_dir)
    # AWS adds compute types over time; the list comes from the installed botocore.
    assert problem.startswith(
        "specs/compute-environments/batch-fanout-ce.yaml: computeResources.type: 'GPU' is not one of "
        "EC2, SPOT, FARGATE, FARGATE_SPOT"
    )


def test_empty_file_and_wrong_top_level_are_named(specs_dir: Path) -> None:
    (specs_dir / "job-definitions" / "leader.yaml").write_text("# nothing yet\n")
    (specs_dir / "job-definitions" / "aggregator.yaml").write_text("- jobDefinitionName: x\n")
    assert problems_of(specs_dir) == [
        "specs/job-definitions/aggregator.yaml: expected a mapping (a job definition request body), got list",
        "specs/job-definitions/leader.yaml: the file is empty",
    ]


def test_a_missing_specs_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_specs(tmp_path / "nowhere")
    assert [str(p) for p in caught.value.problems] == ["nowhere: the specs directory does not exist"]


def test_default_specs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batch_fanout.specs import default_specs_dir

    monkeypatch.delenv("BATCH_FANOUT_SPECS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    # An Airflow project's own specs, never a folder found through where the provider is installed.
    assert default_specs_dir() == tmp_path / "include" / "specs"
    monkeypatch.setenv("BATCH_FANOUT_SPECS_DIR", str(tmp_path / "elsewhere"))
    assert default_specs_dir() == tmp_path / "elsewhere"
