"""BatchFanoutOperator and BatchFanoutSensor inside real DAG runs (dag.test()) on the local endpoint.

The jobs are the tiny probe of tests/plugins/batch_fanout/containers/fanout_probe: it records each
run per logical index, prints a few lines and fails as told, so each test reads what the jobs did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task

from batch_fanout.operators.batch import BatchFanoutOperator
from batch_fanout.sensors.batch import BatchFanoutSensor

from .conftest import FAST, START, array_dag, count_describe_calls, env_of


def state_of(dag_run: Any, task_id: str) -> str | None:
    return dag_run.get_task_instance(task_id).state


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
            .one_or_none()
        )
        return XComModel.deserialize_value(row) if row is not None else None


@pytest.mark.slow
def test_leader_array_aggregator_graph_is_submitted_at_once_and_succeeds(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any, tmp_path: Path
) -> None:
    hold = tmp_path / "release-leader"
    with DAG("bf_graph", schedule=None, start_date=START) as dag:
        leader = BatchFanoutOperator(
            task_id="leader",
            job_name="g-leader",
            container_overrides=probe.overrides(hold_file=hold),
            wait_for_completion=False,
            **FAST,
        )
        followers = BatchFanoutOperator(
            task_id="followers",
            job_name="g-followers",
            array_size=4,
            depends_on=[{"job_id": leader.output, "type": "N_TO_N"}],
            container_overrides=probe.overrides(),
            wait_for_completion=False,
            results_uri="file:///results",
            **FAST,
        )
        aggregator = BatchFanoutOperator(
            task_id="aggregator",
            job_name="g-aggregator",
            depends_on=[followers.output],
            container_overrides=probe.overrides(),
            wait_for_completion=False,
            **FAST,
        )
        watch_followers = BatchFanoutSensor(
            task_id="watch_followers", job_id=followers.output, poke_interval=0.2
        )
        watch_aggregator = BatchFanoutSensor(
            task_id="watch_aggregator", job_id=aggregator.output, poke_interval=0.2
        )
        aggregator >> [watch_followers, watch_aggregator]

    # The leader holds until the aggregator exists: the run can only succeed if the whole graph was
    # submitted while the leader was still running, and Batch gated the rest.
    helpers.release_when(
        lambda: helpers.jobs_of_task(probe_batch, "g-aggregator", "bf_graph", "aggregator"), hold
    )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    (leader_job,) = helpers.jobs_of_task(probe_batch, "g-leader", "bf_graph", "leader")
    (followers_job,) = helpers.jobs_of_task(probe_batch, "g-followers", "bf_graph", "followers")
    (aggregator_job,) = helpers.jobs_of_task(probe_batch, "g-aggregator", "bf_graph", "aggregator")
    assert followers_job["dependsOn"] == [{"jobId": leader_job["jobId"], "type": "N_TO_N"}]
    assert aggregator_job["dependsOn"] == [{"jobId": followers_job["jobId"]}]
    assert aggregator_job["createdAt"] <= leader_job["stoppedAt"]
    assert xcom(dag_run, "followers") == followers_job["jobId"]
    # Every logical index ran exactly once (the leader and the aggregator are index 0 of plain jobs).
    assert probe.runs() == {0: 3, 1: 1, 2: 1, 3: 1}
    assert leader_job["status"] == followers_job["status"] == aggregator_job["status"] == "SUCCEEDED"
    # The links the UI shows were stored for the task.
    assert xcom(dag_run, "followers", "batch_fanout_job")["job_id"] == followers_job["jobId"]
    assert xcom(dag_run, "followers", "batch_fanout_child_job")["job_id"] == f"{followers_job['jobId']}:0"
    assert (
        xcom(dag_run, "followers", "batch_fanout_results")["url"]
        == f"file:///results/bf_graph/{dag_run.run_id}/"
    )
    assert xcom(dag_run, "watch_followers", "batch_fanout_job")["job_id"] == followers_job["jobId"]
    # The Amazon provider's definition and queue links, though the task did not wait for the job
    # (the task named the definition without a revision: the link names it the same way).
    definition_link = xcom(dag_run, "followers", "batch_job_definition")["job_definition_arn"]
    assert definition_link == followers_job["jobDefinition"].rsplit(":", 1)[0]
    assert xcom(dag_run, "followers", "batch_job_queue")["job_queue_arn"] == followers_job["jobQueue"]
    # A plain job has no child link: an empty value, not a missing one.
    assert xcom(dag_run, "leader", "batch_fanout_child_job") == {}


def test_array_size_from_upstream_output_renders_as_int(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    with DAG("bf_size_from_xcom", schedule=None, start_date=START) as dag:

        @task
        def how_many() -> int:
            return 3

        count = how_many()
        BatchFanoutOperator(
            task_id="from_xcomarg",
            job_name="s-xcomarg",
            array_size=count,
            container_overrides=probe.overrides(),
            **FAST,
        )
        from_jinja = BatchFanoutOperator(
            task_id="from_jinja",
            job_name="s-jinja",
            array_size="{{ ti.xcom_pull(task_ids='how_many') }}",
            container_overrides=probe.overrides(),
            **FAST,
        )
        count >> from_jinja

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    for name, task_id in (("s-xcomarg", "from_xcomarg"), ("s-jinja", "from_jinja")):
        (job,) = helpers.jobs_of_task(probe_batch, name, "bf_size_from_xcom", task_id)
        assert job["arrayProperties"]["size"] == 3
    assert probe.runs() == {0: 2, 1: 2, 2: 2}


def test_array_size_one_is_a_plain_job_seeing_index_0_and_zero_skips(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any, capfd: Any
) -> None:
    with DAG("bf_size_edges", schedule=None, start_date=START) as dag:
        BatchFanoutOperator(
            task_id="one", job_name="e-one", array_size=1, container_overrides=probe.overrides(), **FAST
        )
        BatchFanoutOperator(
            task_id="zero", job_name="e-zero", array_size="0", container_overrides=probe.overrides(), **FAST
        )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    (one,) = helpers.jobs_of_task(probe_batch, "e-one", "bf_size_edges", "one")
    assert not one.get("arrayProperties", {}).get("size")
    assert env_of(one)["BATCH_FANOUT_INDEX_MAP"] == "0"
    assert probe.runs() == {0: 1}
    assert state_of(dag_run, "zero") == "skipped"
    assert helpers.jobs_of_task(probe_batch, "e-zero", "bf_size_edges", "zero") == []
    assert "array_size is 0: no Batch job submitted for 'e-zero'" in capfd.readouterr().out


def test_progress_is_one_describe_call_per_poll_with_one_line_each(
    *,
    run_dag: Any,
    probe_connection: str,
    probe: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: Any,
) -> None:
    describe_requests = count_describe_calls(monkeypatch)
    dag = array_dag("bf_progress", job_name="p-arr", array_size=20, container_overrides=probe.overrides())

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    progress = [
        line for line in capfd.readouterr().out.splitlines() if "Batch array job" in line and "done (" in line
    ]
    polls = [line for line in progress if "succeeded:" not in line]
    assert polls, "no progress line logged"
    assert "20/20 done (100%)" in polls[-1] and "SUCCEEDED 20" in polls[-1]
    parent_id = describe_requests[0][0]
    # One DescribeJobs call per poll, each for the parent alone, whatever the array size.
    assert describe_requests == [[parent_id]] * len(polls)


def test_partial_failure_lists_failed_indices_with_reason_exit_code_and_logs(
    *, run_dag: Any, probe_connection: str, probe: Any, capfd: Any
) -> None:
    overrides = probe.overrides(fail_indices="1,3")
    dag = array_dag("bf_partial", job_name="pf-arr", array_size=4, container_overrides=overrides)

    dag_run = run_dag(dag)

    out = capfd.readouterr().out
    assert dag_run.state == "failed"
    assert state_of(dag_run, "arr") == "failed"
    assert "2 of 4 children failed (tolerated: 0)" in out
    assert "index 1: exit code 7" in out and "index 3: exit code 7" in out
    # The failed children's own log lines are copied into the task log.
    assert "probe index 1 failing on purpose" in out and "probe index 3 failing on purpose" in out
    assert probe.runs() == {0: 1, 1: 1, 2: 1, 3: 1}


def test_tolerated_failures_succeed_and_pass_failed_indices_on(
    *, run_dag: Any, probe_connection: str, probe: Any
) -> None:
    overrides = probe.overrides(fail_indices="0,4")
    dag = array_dag(
        "bf_tolerated", job_name="t-arr", array_size=5, tolerated_failures=2, container_overrides=overrides
    )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert xcom(dag_run, "arr", "failed_indices") == [0, 4]


def test_fail_fast_terminates_the_remaining_children(
    *,
    run_dag: Any,
    probe_connection: str,
    probe: Any,
    probe_batch: Any,
    helpers: Any,
    tmp_path: Path,
    capfd: Any,
) -> None:
    # Index 0 fails at once; the others hold until a file that never appears (bounded at 60 s), so
    # only a terminate ends them early.
    overrides = probe.overrides(fail_indices="0", hold_file=tmp_path / "never", hold_seconds=60)
    dag = array_dag(
        "bf_fail_fast", job_name="ff-arr", array_size=4, fail_fast=True, container_overrides=overrides
    )

    dag_run = run_dag(dag)

    out = capfd.readouterr().out
    assert dag_run.state == "failed"
    assert "was terminated (fail-fast" in out
    (job,) = helpers.jobs_of_task(probe_batch, "ff-arr", "bf_fail_fast", "arr")
    children = probe_batch.describe_jobs(jobs=[f"{job['jobId']}:{i}" for i in range(4)])["jobs"]
    assert {c["status"] for c in children} == {"FAILED"}


def test_deferrable_sensor_tolerates_failures_and_logs_progress_from_the_trigger(
    *,
    run_dag: Any,
    probe_connection: str,
    probe: Any,
    helpers: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: Any,
) -> None:
    # The children hold until the trigger has polled (the sensor's own look, then the trigger's), so
    # the sensor certainly defers.
    describe_calls = count_describe_calls(monkeypatch)
    hold = tmp_path / "release"
    helpers.release_when(lambda: len(describe_calls) >= 2, hold)
    with DAG("bf_sensor_deferred", schedule=None, start_date=START) as dag:
        submit = BatchFanoutOperator(
            task_id="submit",
            job_name="sd-arr",
            array_size=3,
            container_overrides=probe.overrides(fail_indices="2", hold_file=hold),
            wait_for_completion=False,
            **FAST,
        )
        BatchFanoutSensor(
            task_id="watch", job_id=submit.output, tolerated_failures=1, deferrable=True, poke_interval=0.2
        )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert xcom(dag_run, "watch", "failed_indices") == [2]
    out = capfd.readouterr().out
    trigger_lines = [
        line for line in out.splitlines() if "[batch_fanout.triggers.batch.BatchFanoutTrigger]" in line
    ]
    assert any("3/3 done" in line and "FAILED 1" in line for line in trigger_lines)
    assert "1 of 3 children failed (tolerated: 1)" in out


def test_sensor_fails_listing_the_failed_child(
    *, run_dag: Any, probe_connection: str, probe: Any, capfd: Any
) -> None:
    with DAG("bf_sensor_fails", schedule=None, start_date=START) as dag:
        submit = BatchFanoutOperator(
            task_id="submit",
            job_name="sf-plain",
            container_overrides=probe.overrides(exit_code=3),
            wait_for_completion=False,
            **FAST,
        )
        # Retries are set, but a terminal failed job is not watched again.
        BatchFanoutSensor(task_id="watch", job_id=submit.output, poke_interval=0.2, retries=2)

    dag_run = run_dag(dag)

    out = capfd.readouterr().out
    assert dag_run.state == "failed"
    assert dag_run.get_task_instance("watch").state == "failed"
    assert dag_run.get_task_instance("watch").try_number == 1
    assert "ended FAILED" in out and "exit code 3" in out
    assert "probe index 0 line 2" in out  # the failed job's log lines copied into the task log
