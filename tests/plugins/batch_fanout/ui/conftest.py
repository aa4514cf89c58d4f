"""Fixtures for the plugin's views: a local endpoint running the tests' probe job, a finished DAG run
whose array job had failed children retried, and Airflow's own API app (with the plugin mounted by
Airflow's plugin manager, as the API server does) with tokens for users of the Simple auth manager."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
PROBE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout-tests/fanout_probe:1"
PROBE_DEFINITION = "fanout-probe-ui"
QUEUE = "batch-fanout-queue"
UI_CONN_ID = "batch_fanout_ui_aws"
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="session")
def ui_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from batch_fanout.local.testing import running_endpoint

    with running_endpoint(tmp_path_factory.mktemp("ui-batch"), containers_dir=CONTAINERS_DIR) as endpoint:
        endpoint.client("batch").register_job_definition(
            jobDefinitionName=PROBE_DEFINITION,
            type="container",
            containerProperties={
                "image": PROBE_IMAGE,
                "command": ["python", "probe.py", "--record-dir", "none"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "0.25"},
                    {"type": "MEMORY", "value": "64"},
                ],
            },
            # The probe resolves its index through the index map: retries may rerun chosen children.
            tags={"batch-fanout:index-map": "true"},
        )
        yield endpoint


def connection_value(endpoint: Any) -> str:
    """The Airflow connection to the endpoint, signing with its credentials."""
    return json.dumps(endpoint.connection())


@pytest.fixture(scope="session")
def ui_run(
    ui_endpoint: Any, tmp_path_factory: pytest.TempPathFactory, airflow_db: Path
) -> Iterator[dict[str, Any]]:
    """One finished run of a DAG whose array task (5 children, indices 1 and 3 fail once) was
    retried, so its latest job reruns only 1 and 3; with a results store holding a report."""
    import os

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG

    from batch_fanout.operators.batch import BatchFanoutOperator

    records = tmp_path_factory.mktemp("ui-records")
    results = tmp_path_factory.mktemp("ui-results")
    saved = os.environ.get(f"AIRFLOW_CONN_{UI_CONN_ID.upper()}")
    os.environ[f"AIRFLOW_CONN_{UI_CONN_ID.upper()}"] = connection_value(ui_endpoint)
    try:
        with DAG("bf_ui_views", schedule=None, start_date=START) as dag:
            BatchFanoutOperator(
                task_id="arr",
                job_name="ui-arr",
                job_definition=PROBE_DEFINITION,
                job_queue=QUEUE,
                array_size=5,
                aws_conn_id=UI_CONN_ID,
                results_uri=results.as_uri(),
                poll_interval=0.2,
                retries=1,
                retry_delay=datetime.timedelta(0),
                container_overrides={
                    "command": ["python", "probe.py", "--record-dir", str(records), "--fail-once", "1,3"]
                },
            )
        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=os.devnull, collect_dags=False)
        bag.bag_dag(dag)
        sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
        dag_run = dag.test()
        assert dag_run.state == "success"
        run_folder = results / dag.dag_id / dag_run.run_id
        yield {"dag_id": dag.dag_id, "run_id": dag_run.run_id, "results": results, "run_folder": run_folder}
    finally:
        if saved is None:
            os.environ.pop(f"AIRFLOW_CONN_{UI_CONN_ID.upper()}", None)
        else:
            os.environ[f"AIRFLOW_CONN_{UI_CONN_ID.upper()}"] = saved


@pytest.fixture
def ui_connection(ui_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test run's connection, pointing at the local endpoint (as the task saw it)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{UI_CONN_ID.upper()}", connection_value(ui_endpoint))
    return UI_CONN_ID


@pytest.fixture(scope="session")
def airflow_api(airflow_db: Path) -> Any:
    """Airflow's API app as ``airflow api-server`` builds it (plugins mounted by the plugin
    manager), in a test client."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app())


@pytest.fixture
def token_for() -> Callable[..., dict[str, str]]:
    """``token_for(role, teams=None)``: an ``Authorization`` header for a Simple auth manager user."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    def make(role: str | None, teams: list[str] | None = None, name: str = "someone") -> dict[str, str]:
        user = SimpleAuthManagerUser(username=name, role=role, teams=teams)
        return {"Authorization": f"Bearer {get_auth_manager().generate_jwt(user)}"}

    return make
