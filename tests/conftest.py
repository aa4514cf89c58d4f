"""Fixtures shared by the whole suite: an Airflow metadata database, the local AWS Batch endpoint,
boto3 clients and the Airflow connection for it, a results store, and a DAG runner.

Airflow reads its configuration when it is first imported, so the environment is set here, at
import time, before any test module imports Airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = REPO_ROOT / "tests" / "data"

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="batch-fanout-tests-"))
_AIRFLOW_HOME = _SESSION_DIR / "airflow"
_AIRFLOW_HOME.mkdir()

os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Tests must never reach a real AWS account.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _inherited in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_inherited, None)
# Airflow appends its DAGS_FOLDER to sys.path, so DAG files import the project's helpers
# (``batch_fanout_project``) by name; appended, not prepended, as Airflow does, so that the DAG file
# ``batch_fanout.py`` never shadows the installed provider package of the same name.
if str(REPO_ROOT / "dags") not in sys.path:
    sys.path.append(str(REPO_ROOT / "dags"))

AWS_CONN_ID = "batch_fanout_aws"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def rome99_path() -> Path:
    """The real road graph of Rome, kept in the repository (``tests/data/README.md`` gives its source)."""
    path = TEST_DATA_DIR / "rome99.gr"
    if not path.is_file():
        pytest.fail(f"test data missing: expected {path} (tests/data/rome99.gr is part of the repository)")
    return path


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in a private AIRFLOW_HOME."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def batch_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local AWS Batch endpoint for the session, running the project's real job containers."""
    from batch_fanout.local.testing import running_endpoint

    containers = REPO_ROOT / "include" / "containers"
    with running_endpoint(tmp_path_factory.mktemp("local-batch"), containers_dir=containers) as endpoint:
        yield endpoint


@pytest.fixture
def batch_client(batch_endpoint: Any) -> Any:
    return batch_endpoint.client("batch")


@pytest.fixture
def logs_client(batch_endpoint: Any) -> Any:
    return batch_endpoint.client("logs")


def connection_uri_env(endpoint: Any) -> str:
    """The Airflow connection ``batch_fanout_aws`` as an environment value, pointing at an endpoint
    (an ``EndpointHandle``) and signing with its credentials."""
    return json.dumps(endpoint.connection())


@pytest.fixture
def aws_connection(batch_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Airflow connection ``batch_fanout_aws`` pointing at the session's local endpoint."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", connection_uri_env(batch_endpoint))
    return AWS_CONN_ID


@pytest.fixture
def results_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty ``file://`` results store, also set as the Airflow variable the DAGs read."""
    store = tmp_path / "results"
    store.mkdir()
    uri = store.as_uri()
    monkeypatch.setenv("AIRFLOW_VAR_BATCH_FANOUT_RESULTS_URI", uri)
    return uri


@pytest.fixture
def run_dag(airflow_db: Path) -> Callable[..., Any]:
    """Serialize a DAG to the metadata database (Airflow 3.1+ needs it) and run it with ``dag.test()``.

    Returns the finished DagRun.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()

    def run(dag: Any, conf: dict[str, Any] | None = None, **test_kwargs: Any) -> Any:
        bag = DagBag(dag_folder=os.devnull, collect_dags=False)
        bag.bag_dag(dag)
        sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
        return dag.test(run_conf=conf, **test_kwargs)

    return run


@pytest.fixture
def xcom() -> Callable[..., Any]:
    """Read a task's XCom of a finished DAG run from the metadata database."""

    def read(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(
                    run_id=dag_run.run_id,
                    dag_ids=dag_run.dag_id,
                    task_ids=task_id,
                    key=key,
                    map_indexes=map_index,
                )
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    return read


@pytest.fixture
def pipeline_settings(aws_connection: str, results_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What the project's DAGs read from Airflow: the connection, the results store and the image
    settings of the local endpoint (as airflow_settings.yaml gives them). Returns the results URI."""
    monkeypatch.setenv("AIRFLOW_VAR_BATCH_FANOUT_IMAGE_REGISTRY", "local")
    monkeypatch.setenv("AIRFLOW_VAR_BATCH_FANOUT_IMAGE_TAG", "latest")
    return results_uri


def load_dag(dag_id: str, *, poll_seconds: float = 0.5, retry_seconds: float = 1.0) -> Any:
    """Import a DAG of the project from ``dags/``, with short poll and retry intervals for tests."""
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    # Both submission modes of the batch_fanout pipeline come from one file, and so do both of
    # job_dependency_graph.
    if dag_id.startswith("batch_fanout"):
        file_name = "batch_fanout_pipeline.py"
    elif dag_id.startswith("job_dependency_graph"):
        file_name = "job_dependency_graph.py"
    else:
        file_name = f"{dag_id}.py"
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / file_name))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = poll_seconds
        if hasattr(task, "poke_interval"):
            task.poke_interval = poll_seconds
        task.retry_delay = timedelta(seconds=retry_seconds)
        task.retry_exponential_backoff = False
    return dag


@pytest.fixture
def project_dag() -> Callable[..., Any]:
    """:func:`load_dag`: a DAG of ``dags/`` with short poll and retry intervals."""
    return load_dag


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 bucket on a moto server on the loopback interface (S3 exists on AWS alone), reached by
    boto3 and s3fs through ``AWS_ENDPOINT_URL_S3``. Returns ``s3://<bucket>``."""
    import socket
    import urllib.request

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    try:
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        # moto keeps its state in the process; each test starts from an empty account.
        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"), timeout=10
        ).close()
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="batch-fanout-results")
        yield "s3://batch-fanout-results"
    finally:
        server.stop()


def _resume(
    dag: Any,
    dag_run: Any,
    *,
    clear_failed: bool = True,
    clear_tasks: Sequence[str] = (),
    timeout: float = 120,
) -> Any:
    """Continue an existing DAG run the way the scheduler would, running tasks in this process.

    Tasks left ``running`` by a killed process are treated as the scheduler treats a task whose
    heartbeat stopped (failed try, up for retry); with ``clear_failed`` the failed tasks and those
    that did not run because of them are cleared, as "Clear" in the UI does; ``clear_tasks`` clears
    those tasks and everything downstream of them too. Either way the run keeps
    its id, its task state store and its try numbers, which the next tries increment.
    """
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        for ti in tis:
            if ti.state == TaskInstanceState.RUNNING:
                ti.state = TaskInstanceState.UP_FOR_RETRY
                ti.end_date = datetime.now(timezone.utc)
        chosen = set(clear_tasks)
        for task_id in clear_tasks:
            chosen |= {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=False)}
        to_clear = [
            ti
            for ti in tis
            if ti.task_id in chosen
            or (clear_failed and ti.state in (TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED))
        ]
        if to_clear:
            clear_task_instances(to_clear, session, dag_run_state=DagRunState.RUNNING)
        run_row = session.merge(dag_run)
        run_row.state = DagRunState.RUNNING
        session.commit()

    deadline = time.monotonic() + timeout
    with create_session() as session:
        from airflow.models.dagrun import DagRun
        from airflow.serialization.serialized_objects import DagSerialization

        current = session.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
        current.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
        while current.state == DagRunState.RUNNING:
            if time.monotonic() > deadline:
                raise AssertionError(f"DAG run {current.run_id} still running after {timeout} s")
            session.expire_all()
            schedulable, _ = current.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in current.get_task_instances(session=session):
                if ti.state == TaskInstanceState.SCHEDULED:
                    _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        return current


@pytest.fixture
def resume_run(airflow_db: Any) -> Callable[..., Any]:
    """``resume_run(dag, dag_run, clear_failed=True)``: continue a DAG run as the scheduler would."""
    return _resume


@contextmanager
def _capacity_held_until_submitted(
    batch_client: Any, job_name: str, deadline_seconds: float = 180
) -> Iterator[None]:
    """Occupy every vCPU of the project's compute environment until a job named ``job_name`` is in
    the queue, so that no job of the run can start, let alone finish, before the whole graph is
    submitted. A pipeline that waited for its leader before submitting the next stage would never
    get there, and the check in the test after it would fail."""
    environment = batch_client.describe_compute_environments(computeEnvironments=["batch-fanout-ce"])
    vcpus = environment["computeEnvironments"][0]["computeResources"]["maxvCpus"]
    definition = batch_client.register_job_definition(
        jobDefinitionName="capacity-holder",
        type="container",
        containerProperties={
            "image": "local/batch-fanout/leader:latest",
            "command": ["python", "-c", "import signal; signal.pause()"],  # runs until terminated
            "resourceRequirements": [
                {"type": "VCPU", "value": str(vcpus)},
                {"type": "MEMORY", "value": "64"},
            ],
        },
    )
    holder = batch_client.submit_job(
        jobName="capacity-holder", jobQueue="batch-fanout-queue", jobDefinition=definition["jobDefinitionArn"]
    )["jobId"]
    started_at = time.time() * 1000

    def release_once_submitted() -> None:
        deadline = time.monotonic() + deadline_seconds
        try:
            while time.monotonic() < deadline:
                listed = batch_client.list_jobs(
                    jobQueue="batch-fanout-queue", filters=[{"name": "JOB_NAME", "values": [job_name]}]
                )["jobSummaryList"]
                if any(job["createdAt"] >= started_at for job in listed):
                    return
                released.wait(0.2)
        finally:
            batch_client.terminate_job(jobId=holder, reason="the run's job graph is submitted")

    released = threading.Event()
    watcher = threading.Thread(target=release_once_submitted, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        released.set()
        watcher.join(timeout=30)


@pytest.fixture
def capacity_held_until_submitted(batch_client: Any) -> Callable[..., Any]:
    """``with capacity_held_until_submitted(job_name):`` hold the session endpoint's compute
    environment until a job named ``job_name`` is submitted (see :func:`_capacity_held_until_submitted`)."""
    return lambda job_name: _capacity_held_until_submitted(batch_client, job_name)
