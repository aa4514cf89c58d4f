"""Killing: a killed worker's retry re-attaches (one job only), on_kill terminates, also when deferred.

The DAG runs in a separate process (``dag.test()`` in a small script) so that the test can kill it
while the task waits on its job, as a worker dies or is told to stop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.triggers.batch import BatchFanoutTrigger

from .conftest import QUEUE, count_describe_calls

DAG_FILE = """
import datetime, json, os
from airflow.sdk import DAG
from batch_fanout.operators.batch import BatchFanoutOperator

settings = json.loads(os.environ["KILL_TEST_SETTINGS"])
with DAG(settings["dag_id"], schedule=None, start_date=datetime.datetime(2026, 1, 1)) as dag:
    BatchFanoutOperator(
        task_id="arr",
        job_name=settings["job_name"],
        job_definition="fanout-probe",
        job_queue="batch-fanout-queue",
        array_size=3,
        poll_interval=0.2,
        container_overrides={"command": settings["command"]},
        retries=settings["retries"],
        retry_delay=datetime.timedelta(0),
        durable=settings.get("durable", True),
    )
"""

# Seconds for a dag.test() process to start Airflow and get its task's job running.
DAG_PROCESS_START_TIMEOUT = 180

RUNNER = """
import importlib.util, os, sys
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

DagBundlesManager().sync_bundles_to_db()

spec = importlib.util.spec_from_file_location("kill_test_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
bag = DagBag(dag_folder=os.devnull, collect_dags=False)
bag.bag_dag(module.dag)
sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
module.dag.test()
"""


def start_dag_process(tmp_path: Path, settings: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
    import json

    dag_file = tmp_path / "kill_test_dag.py"
    dag_file.write_text(DAG_FILE)
    runner = tmp_path / "run_dag.py"
    runner.write_text(RUNNER)
    log = tmp_path / "dag_process.log"
    environment = dict(os.environ, KILL_TEST_SETTINGS=json.dumps(settings))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(runner), str(dag_file)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, dag_file


def load_dag(dag_file: Path, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    import json

    monkeypatch.setenv("KILL_TEST_SETTINGS", json.dumps(settings))
    spec = importlib.util.spec_from_file_location(f"kill_test_dag_{settings['dag_id']}", dag_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def latest_run(dag_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id).order_by(DagRun.id.desc()).first()
        session.expunge(run)
        return run


def task_try(dag_id: str, run_id: str) -> tuple[int, str | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id="arr").one()
        return ti.try_number, ti.state


def submit_held_array(batch: Any, job_name: str, size: int, overrides: dict[str, Any]) -> str:
    """Submit an array of the probe straight to Batch, as a task would have; returns its id."""
    submitted = batch.submit_job(
        jobName=job_name,
        jobQueue=QUEUE,
        jobDefinition="fanout-probe",
        arrayProperties={"size": size},
        containerOverrides=overrides,
    )
    return str(submitted["jobId"])


def wait_job_status(batch: Any, helpers: Any, job_id: str, status: str, what: str) -> None:
    helpers.wait_for(lambda: batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == status, 30, what)


def running_job(batch: Any, helpers: Any, job_name: str, dag_id: str) -> dict[str, Any] | None:
    jobs = helpers.jobs_of_task(batch, job_name, dag_id, "arr")
    if jobs and jobs[-1]["status"] == "RUNNING":
        return jobs[-1]
    return None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("durable", "how_found"),
    [(True, "Reconnecting to existing job"), (False, "of an earlier try by its tags")],
    ids=["task-state-store", "job-tags"],
)
def test_killed_worker_retry_reattaches_and_exactly_one_job_exists(
    *,
    airflow_db: Any,
    probe_connection: str,
    probe: Any,
    probe_batch: Any,
    helpers: Any,
    resume_run: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: Any,
    durable: bool,
    how_found: str,
) -> None:
    hold = tmp_path / "release"
    dag_id = f"bf_reattach_{durable}"
    settings = {
        "dag_id": dag_id,
        "job_name": f"k-reattach-{durable}",
        "command": probe.overrides(hold_file=hold, hold_seconds=300)["command"],
        "retries": 1,
        "durable": durable,
    }
    process, dag_file = start_dag_process(tmp_path, settings)
    try:
        # Kill the worker while its task waits: once the job runs and the task has polled it.
        helpers.wait_for(
            lambda: (
                running_job(probe_batch, helpers, settings["job_name"], dag_id)
                and "Batch array job" in (tmp_path / "dag_process.log").read_text(errors="replace")
            ),
            # A worker's dag.test() starts Airflow and its execution API first: slow on a loaded machine.
            DAG_PROCESS_START_TIMEOUT,
            "the task to wait on its running job",
        )
    finally:
        process.kill()  # the worker dies without any chance to clean up
        process.wait(timeout=30)

    dag = load_dag(dag_file, settings, monkeypatch)
    dag_run = latest_run(dag_id)
    # Release the held job only once the retry has looked at it twice (the re-attach decision, then
    # its first poll), so the retry certainly finds it still running.
    describe_calls = count_describe_calls(monkeypatch)
    helpers.release_when(lambda: len(describe_calls) >= 2, hold)

    resumed = resume_run(dag, dag_run, clear_failed=False)

    assert resumed.state == "success"
    assert task_try(dag_id, dag_run.run_id) == (2, "success")
    (job,) = helpers.jobs_of_task(probe_batch, settings["job_name"], dag_id, "arr")
    assert job["status"] == "SUCCEEDED"
    assert probe.runs() == {0: 1, 1: 1, 2: 1}
    assert how_found in capfd.readouterr().out


@pytest.mark.slow
def test_sigterm_runs_on_kill_which_terminates_the_job(
    *, airflow_db: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any, tmp_path: Path
) -> None:
    settings = {
        "dag_id": "bf_on_kill",
        "job_name": "k-on-kill",
        "command": probe.overrides(hold_file=tmp_path / "never", hold_seconds=300)["command"],
        "retries": 0,
    }
    process, _ = start_dag_process(tmp_path, settings)
    try:
        job = helpers.wait_for(
            lambda: running_job(probe_batch, helpers, "k-on-kill", "bf_on_kill"),
            DAG_PROCESS_START_TIMEOUT,
            "the job",
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    wait_job_status(probe_batch, helpers, job["jobId"], "FAILED", "the job to end")
    children = probe_batch.describe_jobs(jobs=[f"{job['jobId']}:{i}" for i in range(3)])["jobs"]
    assert [child["status"] for child in children] == ["FAILED"] * 3
    assert all("Airflow task killed" in child.get("statusReason", "") for child in children)
    assert process.returncode is not None


def test_trigger_on_kill_terminates_the_job_of_a_deferred_task(
    *, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any, tmp_path: Path
) -> None:
    overrides = probe.overrides(hold_file=tmp_path / "never", hold_seconds=90)
    job_id = submit_held_array(probe_batch, "k-deferred", 2, overrides)
    wait_job_status(probe_batch, helpers, job_id, "RUNNING", "the job to run")

    asyncio.run(BatchFanoutTrigger(job_id=job_id, poll_interval=0.2).on_kill())

    wait_job_status(probe_batch, helpers, job_id, "FAILED", "the job to end")
    children = probe_batch.describe_jobs(jobs=[f"{job_id}:0", f"{job_id}:1"])["jobs"]
    assert all("Airflow task killed while deferred" in c.get("statusReason", "") for c in children)


def test_trigger_reports_progress_and_fails_fast(
    *, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any, tmp_path: Path
) -> None:
    overrides = probe.overrides(fail_indices="2", hold_file=tmp_path / "never", hold_seconds=90)
    job_id = submit_held_array(probe_batch, "k-trigger-fail-fast", 3, overrides)
    trigger = BatchFanoutTrigger(job_id=job_id, poll_interval=0.2, fail_fast=True)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=60))

    assert payload["status"] == "fail_fast"
    assert payload["state"]["counts"]["FAILED"] >= 1
    wait_job_status(probe_batch, helpers, job_id, "FAILED", "the terminated job to end")
