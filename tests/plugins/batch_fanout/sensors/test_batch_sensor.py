"""BatchFanoutSensor's own checks and its hand-over to the trigger (its behaviour on the local
endpoint is tested inside DAG runs in tests/plugins/batch_fanout/operators/test_batch_dags.py)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from botocore.stub import Stubber

from batch_fanout.sensors.batch import BatchFanoutSensor
from batch_fanout.triggers.batch import BatchFanoutTrigger


class FakeTaskInstance:
    dag_id = "dag"
    task_id = "watch"
    run_id = "r"
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


@pytest.mark.parametrize("job_id", [None, "", "   "])
def test_a_missing_job_id_is_a_clear_error(job_id: Any) -> None:
    sensor = BatchFanoutSensor(task_id="watch", job_id=job_id)
    with pytest.raises(AirflowException, match="did the submitting task return one"):
        sensor.execute(cast("Any", {"ti": FakeTaskInstance()}))


def test_negative_tolerated_failures_are_refused() -> None:
    with pytest.raises(ValueError, match="tolerated_failures"):
        BatchFanoutSensor(task_id="watch", job_id="j", tolerated_failures=-1)


def test_deferrable_sensor_hands_the_job_to_the_trigger() -> None:
    sensor = BatchFanoutSensor(
        task_id="watch",
        job_id="arr",
        deferrable=True,
        poke_interval=2.5,
        tolerated_failures=4,
        fail_fast=True,
        aws_conn_id=None,
        region_name="us-east-1",
    )
    with Stubber(sensor.hook.batch) as stubber:
        stubber.add_response(
            "describe_jobs",
            {
                "jobs": [
                    {
                        "jobId": "arr",
                        "jobName": "n",
                        "jobQueue": "q",
                        "jobDefinition": "d",
                        "status": "PENDING",
                        "startedAt": 1,
                        "arrayProperties": {"size": 10, "statusSummary": {"RUNNABLE": 10}},
                    }
                ]
            },
            {"jobs": ["arr"]},
        )
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(cast("Any", {"ti": FakeTaskInstance()}))

    trigger = deferred.value.trigger
    assert trigger == BatchFanoutTrigger(
        job_id="arr",
        aws_conn_id=None,
        region_name="us-east-1",
        poll_interval=2.5,
        tolerated_failures=4,
        fail_fast=True,
        terminate_on_kill=False,
    )
    assert deferred.value.method_name == "execute_complete"


def test_poke_mode_polls_soon_at_first_and_reschedule_mode_waits_the_interval() -> None:
    poking = BatchFanoutSensor(task_id="watch", job_id="j", poke_interval=30)
    early = poking._get_next_poke_interval(0.0, lambda: 1.0, 2)
    late = poking._get_next_poke_interval(0.0, lambda: 600.0, 40)
    assert early <= 1.0 and 0.8 * 30 <= late <= 30

    rescheduling = BatchFanoutSensor(task_id="watch", job_id="j", poke_interval=30, mode="reschedule")
    assert rescheduling._get_next_poke_interval(0.0, lambda: 1.0, 1) == 30
