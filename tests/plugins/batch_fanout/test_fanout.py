"""The fan-out builder: the example that leads docs/provider.md runs as written, both modes build the
graphs they promise, preflight stops a run before anything is submitted, and mistakes are named."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from batch_fanout.fanout import Array, Stage, fan_out

DOCS = Path(__file__).resolve().parents[3] / "docs" / "provider.md"
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def docs_example() -> str:
    """The first Python block of docs/provider.md: the pipeline a user writes."""
    match = re.search(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert match, "docs/provider.md has no Python example"
    return match.group(1)


@pytest.fixture
def user_definitions(probe_endpoint: Any, probe: Any) -> None:
    """The user's own job definitions and queue named in the example, on the probe endpoint: the
    probe stands in for their containers (and declares the index-map contract)."""
    batch = probe_endpoint.client("batch")
    if not batch.describe_job_queues(jobQueues=["my-queue"])["jobQueues"]:
        batch.create_job_queue(
            jobQueueName="my-queue",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "batch-fanout-ce"}],
        )
    for name in ("my-leader", "my-worker", "my-aggregator"):
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout-tests/fanout_probe:1",
                "command": probe.overrides()["command"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "0.25"},
                    {"type": "MEMORY", "value": "64"},
                ],
            },
            tags={"batch-fanout:index-map": "true"},
        )


def test_the_docs_example_is_a_ten_line_pipeline_that_runs(
    *, run_dag: Any, probe_connection: str, user_definitions: None, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    code = docs_example()
    statements = [
        line for line in code.splitlines() if line.strip() and not line.startswith(("from ", "import "))
    ]
    assert len(statements) <= 10, code
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    dag = namespace["dag"]
    for task in dag.tasks:
        for interval in ("poll_interval", "poke_interval"):
            if hasattr(task, interval):
                setattr(task, interval, 0.2)

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert {t.task_id for t in dag.tasks} == {
        "submit_leader",
        "submit_work",
        "submit_aggregate",
        "watch_leader",
        "watch_work",
        "watch_aggregate",
    }
    (leader,) = helpers.jobs_of_task(probe_batch, "submit_leader", dag.dag_id, "submit_leader", "my-queue")
    (work,) = helpers.jobs_of_task(probe_batch, "submit_work", dag.dag_id, "submit_work", "my-queue")
    (aggregate,) = helpers.jobs_of_task(
        probe_batch, "submit_aggregate", dag.dag_id, "submit_aggregate", "my-queue"
    )
    # job_name is the task id; the graph went to Batch at once, gated by dependsOn.
    assert work["arrayProperties"]["size"] == 8
    assert work["dependsOn"] == [{"jobId": leader["jobId"], "type": "N_TO_N"}]
    assert aggregate["dependsOn"] == [{"jobId": work["jobId"]}]
    assert work["jobQueue"].endswith("job-queue/my-queue")
    assert probe.runs() == {0: 3, **{index: 1 for index in range(1, 8)}}


def test_stage_by_stage_runs_each_stage_after_the_last_with_sizes_from_the_leader(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    seen: list[str] = []

    def sizes(context: Any) -> dict[str, int]:
        seen.append(context["ti"].task_id)
        return {"work": 3}

    with DAG("bf_staged", schedule=None, start_date=START) as dag:
        built = fan_out(
            job_queue="batch-fanout-queue",
            leader=Stage("leader", "fanout-probe", container_overrides=probe.overrides()),
            arrays=[Array("work", "fanout-probe", container_overrides=probe.overrides())],
            aggregator=Stage("aggregate", "fanout-probe", container_overrides=probe.overrides()),
            mode="stage_by_stage",
            array_sizes=sizes,
            poll_interval=0.2,
        )
    assert [t.task_id for t in dag.topological_sort()] == [
        "run_leader",
        "read_array_sizes",
        "run_work",
        "run_aggregate",
    ]
    assert built.first.task_id == "run_leader" and built.last.task_id == "run_aggregate"

    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    (work,) = helpers.jobs_of_task(probe_batch, "run_work", "bf_staged", "run_work")
    assert work["arrayProperties"]["size"] == 3 and not work.get("dependsOn")
    assert probe.runs() == {0: 3, 1: 1, 2: 1}


def test_a_failing_preflight_stops_the_run_before_any_job_is_submitted(
    *, run_dag: Any, probe_connection: str, probe: Any, probe_batch: Any, helpers: Any
) -> None:
    checked: list[tuple[Any, str]] = []

    def preflight(params: Any, *, aws_conn_id: str) -> None:
        checked.append((dict(params), aws_conn_id))
        raise ValueError("param items: 0 selects no work")

    retried = {"retries": 2, "retry_delay": datetime.timedelta(0)}
    with DAG(
        "bf_preflight", schedule=None, start_date=START, params={"items": 0}, default_args=retried
    ) as dag:
        fan_out(
            job_queue="batch-fanout-queue",
            leader=Stage("leader", "fanout-probe", container_overrides=probe.overrides()),
            arrays=[Array("work", "fanout-probe", size="{{ params.items }}")],
            preflight=preflight,
        )

    dag_run = run_dag(dag)

    assert dag_run.state == "failed"
    preflight_ti = dag_run.get_task_instance("preflight")
    assert preflight_ti.state == "failed" and preflight_ti.try_number == 1
    assert checked == [({"items": 0}, "aws_default")]
    assert dag_run.get_task_instance("submit_leader").state == "upstream_failed"
    assert helpers.jobs_of_task(probe_batch, "submit_leader", "bf_preflight", "submit_leader") == []


def test_sizes_that_miss_an_array_fail_naming_it(*, run_dag: Any, probe_connection: str, probe: Any) -> None:
    with DAG("bf_sizes_missing", schedule=None, start_date=START) as dag:
        fan_out(
            job_queue="batch-fanout-queue",
            leader=Stage("leader", "fanout-probe", container_overrides=probe.overrides()),
            arrays=[Array("work", "fanout-probe", container_overrides=probe.overrides())],
            mode="stage_by_stage",
            array_sizes=lambda context: {"other": 3},
            poll_interval=0.2,
        )

    dag_run = run_dag(dag)

    assert dag_run.state == "failed"
    assert dag_run.get_task_instance("read_array_sizes").state == "failed"
    # The array never ran unsized (as one plain job).
    assert dag_run.get_task_instance("run_work").state == "upstream_failed"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"arrays": []}, "at least one stage"),
        ({"arrays": [Array("work", "d")]}, "array 'work' has no size: with mode 'all_at_once'"),
        (
            {"arrays": [Array("work", "d", size=2, after="nowhere")]},
            "after='nowhere' names no stage before it",
        ),
        ({"arrays": [Array("leader", "d", size=2)]}, "'leader' is used twice"),
        ({"arrays": [Array("work", "d")], "mode": "stage_by_stage"}, "no array_sizes callable"),
        ({"arrays": [Array("work", "d", size=2)], "mode": "sometimes"}, "mode must be"),
    ],
)
def test_a_pipeline_that_cannot_be_built_is_refused_naming_the_stage(
    arguments: dict[str, Any], message: str
) -> None:
    with DAG("bf_refused", schedule=None, start_date=START), pytest.raises(ValueError, match=message):
        fan_out(job_queue="q", leader=Stage("leader", "d"), **arguments)


def test_stage_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="must be a Python identifier"):
        Stage("my stage", "d")
    with pytest.raises(ValueError, match="dependency must be 'N_TO_N' or None"):
        Array("work", "d", size=2, dependency="SEQUENTIAL")


def test_all_at_once_submits_side_by_side_what_does_not_depend_on_each_other() -> None:
    with DAG("bf_side_by_side", schedule=None, start_date=START) as dag:
        built = fan_out(
            job_queue="q",
            leader=Stage("leader", "d"),
            arrays=[
                Array("left", "d", size=2, dependency="N_TO_N"),
                Array("right", "d", size=2, after="leader"),
                Stage("joined", "d", after=["left", "right"]),
            ],
            aggregator=Stage("aggregate", "d"),
            preflight=lambda params, *, aws_conn_id: None,
        )
    upstream = {task.task_id: task.upstream_task_ids for task in dag.tasks}

    # Each submission waits only for the submissions whose job ids its dependsOn names.
    assert upstream["submit_leader"] == {"preflight"}
    assert upstream["submit_left"] == {"submit_leader"}
    assert upstream["submit_right"] == {"submit_leader"}
    assert upstream["submit_joined"] == {"submit_left", "submit_right"}
    assert upstream["submit_aggregate"] == {"submit_left", "submit_right", "submit_joined"}
    # The whole graph is in Batch before the first watcher starts; the watchers follow the stages.
    assert upstream["watch_leader"] == {f"submit_{name}" for name in built.submits}
    assert upstream["watch_right"] == {"submit_right", "watch_left"}
    assert built.first.task_id == "preflight" and built.last.task_id == "watch_aggregate"
