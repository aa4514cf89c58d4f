"""RegisterJobDefinitionsOperator: registers the project's job definitions on the local endpoint
through the Airflow connection, returns the map a run pins, and fails (registering nothing) on a
bad spec."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_SPECS = Path(__file__).resolve().parents[4] / "include" / "specs"


@pytest.fixture
def own_specs(tmp_path: Path) -> Path:
    """The project's specs with job definitions renamed ``<name>-<random>``, so that this test's
    revisions on the session's shared endpoint are its own."""
    target = tmp_path / "specs"
    shutil.copytree(PROJECT_SPECS, target, ignore=shutil.ignore_patterns("cloudformation"))
    suffix = uuid.uuid4().hex[:10]
    for path in (target / "job-definitions").glob("*.yaml"):
        body = yaml.safe_load(path.read_text())
        body["jobDefinitionName"] = f"{body['jobDefinitionName']}-{suffix}"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
    return target


@pytest.fixture
def local_image_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airflow variables of a local deployment, as environment variables (a secrets backend)."""
    monkeypatch.setenv("AIRFLOW_VAR_BATCH_FANOUT_IMAGE_REGISTRY", "local")
    monkeypatch.setenv("AIRFLOW_VAR_BATCH_FANOUT_IMAGE_TAG", "latest")


def names_in(specs_dir: Path) -> list[str]:
    return sorted(
        yaml.safe_load(path.read_text())["jobDefinitionName"]
        for path in (specs_dir / "job-definitions").glob("*")
    )


def revisions(batch_client: Any, name: str) -> list[int]:
    found = batch_client.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    return sorted(int(d["revision"]) for d in found)


def test_init_builds_no_hook_and_templates_the_settings() -> None:
    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    operator = RegisterJobDefinitionsOperator(task_id="register", aws_conn_id="no_such_connection")
    assert "hook" not in vars(operator)  # the hook is a cached property, built on first use only
    assert operator.aws_conn_id == "no_such_connection"
    assert RegisterJobDefinitionsOperator(task_id="default").aws_conn_id == "aws_default"
    assert {"specs_dir", "image_registry", "image_tag", "job_role_arn"} <= set(operator.template_fields)


def test_execute_registers_once_and_returns_the_pinned_map(
    aws_connection: str, batch_client: Any, own_specs: Path, local_image_variables: None
) -> None:
    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    operator = RegisterJobDefinitionsOperator(
        task_id="register", specs_dir=str(own_specs), aws_conn_id=aws_connection
    )
    first = operator.execute({})
    second = RegisterJobDefinitionsOperator(
        task_id="register", specs_dir=str(own_specs), aws_conn_id=aws_connection
    ).execute({})

    names = names_in(own_specs)
    assert first == second == {name: f"{name}:1" for name in names}
    assert all(revisions(batch_client, name) == [1] for name in names)
    leader = next(n for n in names if n.startswith("batch-fanout-leader"))
    (described,) = batch_client.describe_job_definitions(jobDefinitions=[first[leader]])["jobDefinitions"]
    assert described["containerProperties"]["image"] == "local/batch-fanout/leader:latest"


def test_arguments_override_the_variables(
    aws_connection: str, batch_client: Any, own_specs: Path, local_image_variables: None
) -> None:
    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    pinned = RegisterJobDefinitionsOperator(
        aws_conn_id=aws_connection, task_id="register", specs_dir=str(own_specs), image_tag="v7"
    ).execute({})
    stress = next(value for name, value in pinned.items() if name.startswith("batch-fanout-stress-ng"))
    (described,) = batch_client.describe_job_definitions(jobDefinitions=[stress])["jobDefinitions"]
    assert described["containerProperties"]["image"] == "local/batch-fanout/stress_ng:v7"


def test_a_bad_spec_fails_the_task_and_registers_nothing(
    aws_connection: str,
    batch_client: Any,
    own_specs: Path,
    local_image_variables: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    monkeypatch.delenv("AIRFLOW_VAR_BATCH_FANOUT_IMAGE_TAG")
    operator = RegisterJobDefinitionsOperator(
        task_id="register", specs_dir=str(own_specs), aws_conn_id=aws_connection
    )
    with pytest.raises(AirflowFailException) as caught:
        operator.execute({})
    assert (
        "job-definitions/aggregator.yaml: containerProperties.image: needs the setting image_tag, which is not set "
        "(the argument image_tag or the Airflow variable batch_fanout_image_tag)"
    ) in str(caught.value)
    assert all(revisions(batch_client, name) == [] for name in names_in(own_specs))


@pytest.mark.slow
def test_a_dag_pins_what_the_task_registered(
    run_dag: Any, aws_connection: str, own_specs: Path, local_image_variables: None, tmp_path: Path
) -> None:
    from airflow.sdk import DAG, task

    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    received = tmp_path / "pinned.json"
    with DAG(dag_id=f"register_specs_{uuid.uuid4().hex[:8]}", schedule=None) as dag:
        register = RegisterJobDefinitionsOperator(
            aws_conn_id=aws_connection, task_id="register_job_definitions", specs_dir=str(own_specs)
        )

        @task
        def use(pinned: dict[str, str]) -> None:
            received.write_text(json.dumps(pinned))

        use(register.output)  # type: ignore[arg-type]  # an XComArg resolves to the map at run time

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert json.loads(received.read_text()) == {name: f"{name}:1" for name in names_in(own_specs)}
