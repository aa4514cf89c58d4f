"""Retry only the failed children, N_TO_N dependents included, and the deferrable path, in real DAG runs."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import DAG

from batch_fanout.operators.batch import BatchFanoutOperator
from batch_fanout.sensors.batch import BatchFanoutSensor

from .conftest import FAST, NO_DELAY_RETRY, START, array_dag, env_of


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_retry_submits_only_the_failed_children_with_an_index_map(
    *,
    run_dag: Any,
    probe_connection: str,
    probe: Any,
    probe_batch: Any,
    helpers: Any,
    deferrable: bool,
    capfd: Any,
) -> None:
    dag_id = f"bf_retry_failed_{'deferred' if deferrable else 'sync'}"
    overrides = probe.overrides(fail_once="1,3")
    dag = array_dag(
        dag_id,
        job_name=f"r-arr-{deferrable}",
        array_size=5,
        deferrable=deferrable,
        container_overrides=overrides,
        **NO_DELAY_RETRY,
    )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert dag_run.get_task_instance("arr").try_number == 2
    first, retried = helpers.jobs_of_task(probe_batch, f"r-arr-{deferrable}", dag_id, "arr")
    assert first["status"] == "FAILED" and first["arrayProperties"]["size"] == 5
    assert retried["status"] == "SUCCEEDED" and retried["arrayProperties"]["size"] == 2
    assert env_of(retried)["BATCH_FANOUT_INDEX_MAP"] == "1,3"
    # Succeeded children were not run again; the failed ones ran once more, on their own index.
    assert probe.runs() == {0: 1, 1: 2, 2: 1, 3: 2, 4: 1}
    out = capfd.readouterr().out
    assert "submitting only logical indices 1,3" in out
    # Whether a try defers depends on whether its jobs are still running at its first look; the
    # trigger's progress lines are checked where deferral is certain (the deferrable sensor test).


def test_retry_of_one_failed_child_is_a_plain_job_on_its_index(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    overrides = probe.overrides(fail_once="2")
    dag = array_dag(
        "bf_retry_one", job_name="r-one", array_size=3, container_overrides=overrides, **NO_DELAY_RETRY
    )

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    _, retried = helpers.jobs_of_task(probe_batch, "r-one", "bf_retry_one", "arr")
    assert not retried.get("arrayProperties", {}).get("size")
    assert env_of(retried)["BATCH_FANOUT_INDEX_MAP"] == "2"
    assert probe.runs() == {0: 1, 1: 1, 2: 2}


@pytest.mark.slow
def test_rerun_of_a_graph_reruns_only_failed_indices_and_keeps_n_to_n_dependents_aligned(
    *, run_dag: Any, resume_run: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    upstream_probe = probe.overrides(fail_once="1,3")
    downstream_probe = {"command": [*probe.overrides()["command"][:-1], str(probe.record_dir / "down")]}
    with DAG("bf_n_to_n_rerun", schedule=None, start_date=START) as dag:
        first = BatchFanoutOperator(
            task_id="first",
            job_name="n-first",
            array_size=4,
            container_overrides=upstream_probe,
            wait_for_completion=False,
            **FAST,
        )
        second = BatchFanoutOperator(
            task_id="second",
            job_name="n-second",
            array_size=4,
            depends_on=[{"job_id": first.output, "type": "N_TO_N"}],
            container_overrides=downstream_probe,
            wait_for_completion=False,
            **FAST,
        )
        watch_first = BatchFanoutSensor(task_id="watch_first", job_id=first.output, poke_interval=0.2)
        watch_second = BatchFanoutSensor(task_id="watch_second", job_id=second.output, poke_interval=0.2)
        second >> [watch_first, watch_second]

    failed_run = run_dag(dag)
    assert failed_run.state == "failed"
    assert failed_run.get_task_instance("watch_first").state == "failed"

    # The user clears the submitting tasks and their sensors in the same DAG run, as in the UI.
    rerun = resume_run(dag, failed_run, clear_failed=False, clear_tasks=["first", "second"])

    assert rerun.state == "success"
    first_jobs = helpers.jobs_of_task(probe_batch, "n-first", "bf_n_to_n_rerun", "first")
    second_jobs = helpers.jobs_of_task(probe_batch, "n-second", "bf_n_to_n_rerun", "second")
    assert [j["arrayProperties"]["size"] for j in first_jobs] == [4, 2]
    assert [j["arrayProperties"]["size"] for j in second_jobs] == [4, 2]
    assert env_of(first_jobs[1])["BATCH_FANOUT_INDEX_MAP"] == "1,3"
    assert env_of(second_jobs[1])["BATCH_FANOUT_INDEX_MAP"] == "1,3"
    assert second_jobs[1]["dependsOn"] == [{"jobId": first_jobs[1]["jobId"], "type": "N_TO_N"}]
    # Upstream: indices 1 and 3 ran twice (failed once). Downstream: every index exactly once, since
    # children 1 and 3 never started while their upstream children had failed.
    records = probe.runs()
    assert records == {0: 1, 1: 2, 2: 1, 3: 2}
    downstream = sorted(int(p.name.split(".")[0]) for p in (probe.record_dir / "down").glob("*.[0-9]*"))
    assert downstream == [0, 1, 2, 3]
