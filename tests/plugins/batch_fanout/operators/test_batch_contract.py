"""The provider's side of the job contract in real DAG runs: safe partial retries for containers that
do not know the index map, input errors that are not retried, and mapped (``.partial().expand()``)
operators and sensors."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from batch_fanout.operators.batch import BatchFanoutOperator
from batch_fanout.sensors.batch import BatchFanoutSensor

from .conftest import NO_DELAY_RETRY, QUEUE, START, array_dag, env_of


def test_a_container_reading_the_array_index_itself_gets_the_whole_array_again(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any, capfd: Any
) -> None:
    # A user's container that reads AWS_BATCH_JOB_ARRAY_INDEX directly; its definition does not
    # declare the index-map contract. Indices 2 and 4 fail on their first run.
    overrides = probe.overrides(fail_once="2,4", index_source="array")
    dag = array_dag(
        "bf_naive_retry",
        task_id="work",
        job_definition="naive-probe",
        array_size=5,
        container_overrides=overrides,
        **NO_DELAY_RETRY,
    )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    first, retried = helpers.jobs_of_task(probe_batch, "work", "bf_naive_retry", "work")
    assert retried["arrayProperties"]["size"] == 5
    assert "BATCH_FANOUT_INDEX_MAP" not in env_of(retried)
    # Every index's output exists and was written by a child of that very index.
    outputs = probe.outputs()
    assert sorted(outputs) == [0, 1, 2, 3, 4]
    for index, writer in outputs.items():
        assert writer.endswith(f":{index}"), (index, writer)
        assert writer.rsplit(":", 1)[0] in (first["jobId"], retried["jobId"])
    assert outputs[2].startswith(retried["jobId"]) and outputs[4].startswith(retried["jobId"])
    assert "does not declare the tag batch-fanout:index-map=true" in capfd.readouterr().out


@pytest.mark.parametrize("watch", ["operator", "sensor"])
def test_an_input_error_fails_the_task_without_retries_with_the_jobs_message(
    *, run_dag: Any, probe_connection: str, probe: Any, watch: str
) -> None:
    overrides = probe.overrides(exit_code=65)
    dag_id = f"bf_input_error_{watch}"
    with DAG(dag_id, schedule=None, start_date=START) as dag:
        submit = BatchFanoutOperator(
            task_id="work",
            job_definition="fanout-probe",
            job_queue=QUEUE,
            array_size=3,
            container_overrides=overrides,
            poll_interval=0.2,
            wait_for_completion=watch == "operator",
            retries=2,
            retry_delay=datetime.timedelta(0),
        )
        if watch == "sensor":
            submit >> BatchFanoutSensor(
                task_id="watch_work", job_id=submit.output, poke_interval=0.2, retries=2
            )

    dag_run = run_dag(dag)

    assert dag_run.state == "failed"
    failed = dag_run.get_task_instance("work" if watch == "operator" else "watch_work")
    assert failed.state == "failed"
    assert failed.try_number == 1, "an input error must not be retried"
    # Nothing was resubmitted: one job, every child failed once.
    assert probe.runs() == {0: 1, 1: 1, 2: 1}


def test_the_input_error_message_carries_the_jobs_last_log_line(
    *, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from batch_fanout.hooks.batch_client import BatchFanoutClientHook
    from batch_fanout.operators._watch import finish_job

    job_id = probe_batch.submit_job(
        jobName="input-error",
        jobQueue=QUEUE,
        jobDefinition="fanout-probe",
        containerOverrides=probe.overrides(exit_code=65),
    )["jobId"]
    hook = BatchFanoutClientHook(aws_conn_id=probe_connection)
    description = helpers.wait_for(
        lambda: next(
            (d for d in hook.describe_jobs([job_id]) if d["status"] in ("SUCCEEDED", "FAILED")), None
        ),
        60,
        "the job to fail",
    )
    sensor = BatchFanoutSensor(task_id="watch", job_id=job_id, aws_conn_id=probe_connection)
    sensor.tolerated_failures = 0

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pass

    with pytest.raises(AirflowFailException) as raised:
        finish_job(sensor, {"ti": TI()}, hook, description, retry_on_failure=True)  # type: ignore[typeddict-item]
    message = str(raised.value)
    assert "input error (exit code 65, not retried)" in message
    assert "probe index 0 exits 65: bad input on line 3" in message


def test_mapped_operator_and_sensor_serialize_and_run(
    *, run_dag: Any, probe_connection: str, probe: Any, xcom: Any
) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("bf_mapped", schedule=None, start_date=START) as dag:
        submitted = BatchFanoutOperator.partial(
            task_id="work",
            job_definition="fanout-probe",
            job_queue=QUEUE,
            container_overrides=probe.overrides(),
            wait_for_completion=False,
            poll_interval=0.2,
        ).expand(array_size=[2, 3])
        BatchFanoutSensor.partial(task_id="watch", poke_interval=0.2).expand(job_id=submitted.output)

    # The DAG serializes and comes back with both tasks mapped.
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert {task.task_id for task in restored.tasks} == {"work", "watch"}

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    states = {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}
    assert states == {
        ("work", 0): "success",
        ("work", 1): "success",
        ("watch", 0): "success",
        ("watch", 1): "success",
    }
    job_ids = [xcom(dag_run, "work", map_index=index) for index in (0, 1)]
    assert len(set(job_ids)) == 2 and all(job_ids)
    # The children of both jobs ran: indices 0 and 1 twice (two arrays), index 2 once.
    assert probe.runs() == {0: 2, 1: 2, 2: 1}
