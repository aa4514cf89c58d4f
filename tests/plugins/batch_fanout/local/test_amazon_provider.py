"""The Amazon provider's own BatchOperator (sync and deferrable), BatchSensor and BatchWaitersHook,
unchanged, in a real DAG run (``dag.test()``) against the local endpoint."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

IMAGE = "local-tests/provider/testjob:1"
QUEUE = "batch-fanout-queue"


@pytest.fixture
def definition(batch_endpoint: Any, containers_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test job's definition on the session endpoint, and fast polling in the provider's hook."""
    from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook

    # The session endpoint runs the project's images; map this test's image to its own folder.
    image_map = batch_endpoint.data_dir / "images.json"
    mapping = json.loads(image_map.read_text()) if image_map.exists() else {}
    mapping[IMAGE] = str(containers_dir / "testjob")
    image_map.write_text(json.dumps(mapping))
    batch = batch_endpoint.client("batch")
    definition = batch.register_job_definition(
        jobDefinitionName="provider-testjob",
        type="container",
        parameters={"step": "print:from-the-definition"},
        containerProperties={"image": IMAGE, "command": ["python", "testjob.py", "Ref::step"]},
    )["jobDefinitionArn"]
    # The hook's documented knob for tests: poll every 0..1 s instead of 1..10 s.
    monkeypatch.setattr(BatchClientHook, "DEFAULT_DELAY_MIN", 0)
    monkeypatch.setattr(BatchClientHook, "DEFAULT_DELAY_MAX", 1)
    return str(definition)


@pytest.mark.slow
def test_amazon_batch_operator_sensor_and_waiters_in_a_dag_run(
    airflow_db: Path, batch_endpoint: Any, aws_connection: str, run_dag: Any, definition: str
) -> None:
    from airflow.providers.amazon.aws.hooks.batch_waiters import BatchWaitersHook
    from airflow.providers.amazon.aws.operators.batch import BatchOperator
    from airflow.providers.amazon.aws.sensors.batch import BatchSensor
    from airflow.sdk import DAG, task

    batch = batch_endpoint.client("batch")
    with DAG(dag_id="local_endpoint_amazon_provider", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        synchronous = BatchOperator(
            task_id="synchronous",
            job_name="synchronous",
            job_queue=QUEUE,
            job_definition=definition,
            array_properties={"size": 3},
            parameters={"step": "print:sync"},
            aws_conn_id=aws_connection,
            region_name="us-east-1",
            awslogs_enabled=True,
        )
        sensor = BatchSensor(
            task_id="sensor",
            job_id="{{ ti.xcom_pull(task_ids='synchronous') }}",
            aws_conn_id=aws_connection,
            region_name="us-east-1",
            poke_interval=0.5,
            timeout=60,
        )

        @task
        def wait_with_waiters(job_id: str) -> str:
            config = copy.deepcopy(BatchWaitersHook(aws_conn_id=aws_connection).default_config)
            for waiter in config["waiters"].values():
                waiter["delay"] = 1
            hook = BatchWaitersHook(waiter_config=config, aws_conn_id=aws_connection, region_name="us-east-1")
            client: Any = hook.client
            submitted = client.submit_job(
                jobName="waited", jobQueue=QUEUE, jobDefinition=definition, dependsOn=[{"jobId": job_id}]
            )
            hook.wait_for_job(submitted["jobId"], delay=0)
            [job] = client.describe_jobs(jobs=[submitted["jobId"]])["jobs"]
            return str(job["status"])

        failing = BatchOperator(
            task_id="failing",
            job_name="failing",
            job_queue=QUEUE,
            job_definition=definition,
            container_overrides={"command": ["python", "testjob.py", "exit:9"]},
            aws_conn_id=aws_connection,
            region_name="us-east-1",
        )

        waited = wait_with_waiters(cast(str, synchronous.output))
        synchronous >> sensor >> waited >> failing

    dag_run = run_dag(dag)
    states = {instance.task_id: instance.state for instance in dag_run.get_task_instances()}
    assert states == {
        "synchronous": "success",
        "sensor": "success",
        "wait_with_waiters": "success",
        "failing": "failed",
    }
    jobs = batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_DEFINITION", "values": [definition]}])
    by_name = {job["jobName"]: job for job in jobs["jobSummaryList"]}
    assert by_name["synchronous"]["status"] == "SUCCEEDED"
    assert by_name["synchronous"]["arrayProperties"]["size"] == 3
    assert by_name["waited"]["status"] == "SUCCEEDED"
    assert by_name["failing"]["status"] == "FAILED"
    assert by_name["failing"]["container"]["exitCode"] == 9


@pytest.mark.slow
def test_amazon_batch_operator_deferrable_in_a_dag_run(
    airflow_db: Path, batch_endpoint: Any, aws_connection: str, run_dag: Any, definition: str
) -> None:
    # The provider's deferrable path (BatchJobTrigger) runs on aiobotocore, which the project installs
    # through the Amazon provider's aiobotocore extra.
    from airflow.providers.amazon.aws.operators.batch import BatchOperator
    from airflow.sdk import DAG

    with DAG(
        dag_id="local_endpoint_amazon_deferrable", schedule=None, start_date=datetime(2024, 1, 1)
    ) as dag:
        BatchOperator(
            task_id="deferred",
            job_name="deferred",
            job_queue=QUEUE,
            job_definition=definition,
            array_properties={"size": 2},
            container_overrides={"command": ["python", "testjob.py", "print:deferred"]},
            aws_conn_id=aws_connection,
            region_name="us-east-1",
            deferrable=True,
            poll_interval=1,
        )
    dag_run = run_dag(dag)
    assert {instance.task_id: instance.state for instance in dag_run.get_task_instances()} == {
        "deferred": "success"
    }
    batch = batch_endpoint.client("batch")
    jobs = batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": ["deferred"]}])
    assert [job["status"] for job in jobs["jobSummaryList"]] == ["SUCCEEDED"]
