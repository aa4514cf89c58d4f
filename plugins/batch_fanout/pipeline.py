"""Building blocks that the project's DAGs share: names, default arguments, job environments, the
task that reads a run's report.

Everything here is cheap to import and makes no network call, so DAG files that use it parse fast.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from typing import Any

from batch_fanout.notifications.failure import RunFailureNotifier

log = logging.getLogger(__name__)

AWS_CONN_ID = "batch_fanout_aws"
JOB_QUEUE = "batch-fanout-queue"
SUBMISSION_POOL = "batch_submissions"
OWNER = "batch-fanout"

RESULTS_URI = "{{ var.value.batch_fanout_results_uri }}"
# The Slack incoming-webhook connection failures are posted to; empty (the default) posts nothing.
SLACK_CONN_ID = "{{ var.value.get('batch_fanout_slack_conn_id', '') }}"
RUN_PREFIX = "{{ dag.dag_id }}/{{ run_id }}"
REGISTER_TASK_ID = "register_job_definitions"

LEADER = "batch-fanout-leader"
STRESS_NG = "batch-fanout-stress-ng"
SHORTEST_PATH = "batch-fanout-shortest-path"
AGGREGATOR = "batch-fanout-aggregator"
STEP = "batch-fanout-step"

ALL_AT_ONCE = "all_at_once"
STAGE_BY_STAGE = "stage_by_stage"

# Seconds between DescribeJobs polls. One call per poll whatever the array size, so a short interval
# is cheap; it bounds how late Airflow notices that a job ended.
POLL_SECONDS = 5


def schedule(dag_id: str, default: str | None) -> str | None:
    """The DAG's schedule: ``default``, unless the environment variable
    ``BATCH_FANOUT_SCHEDULE_<DAG_ID>`` overrides it (a cron expression, a preset such as ``@hourly``,
    or ``none`` for on demand only)."""
    value = os.environ.get(f"BATCH_FANOUT_SCHEDULE_{dag_id.upper()}")
    if value is None:
        return default
    return None if value.strip().lower() in ("", "none") else value.strip()


def default_args(*, retries: int = 2) -> dict[str, Any]:
    """Task defaults for every project DAG: an owner, retries with exponential backoff, a failure
    notification in the run's results store."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": [
            RunFailureNotifier(results_uri=RESULTS_URI, slack_webhook_conn_id=SLACK_CONN_ID)
        ],
    }


def pinned_job_definition(name: str) -> str:
    """A template for the exact ``name:revision`` this run registered, so that a deploy in the middle
    of a run never changes what the run executes."""
    return "{{ ti.xcom_pull(task_ids='" + REGISTER_TASK_ID + "')['" + name + "'] }}"


def job_overrides(*, fail_once: bool = False) -> dict[str, Any]:
    """``containerOverrides`` giving a job the results store and the run's folder in it.

    :param fail_once: also pass the run's ``fail_once_indices`` parameter (failure injection).
    """
    environment = [
        {"name": "RESULTS_URI", "value": RESULTS_URI},
        {"name": "RUN_PREFIX", "value": RUN_PREFIX},
    ]
    if fail_once:
        environment.append({"name": "BATCH_FANOUT_FAIL_ONCE", "value": "{{ params.fail_once_indices }}"})
    return {"environment": environment}


def run_folder_uri(results_uri: str, dag_id: str, run_id: str) -> str:
    return f"{results_uri.rstrip('/')}/{dag_id}/{run_id}"


def read_json(uri: str) -> Any:
    """Read one JSON document from the results store (``file://`` or ``s3://``)."""
    import fsspec

    with fsspec.open(uri, "r") as handle:
        return json.load(handle)


def report_headlines(report: dict[str, Any]) -> list[str]:
    """A few lines a person reads first: is the run complete, what ran, the headline figures."""
    summary = report.get("summary") or {}
    lines = [f"complete: {summary.get('complete')}"]
    stress = summary.get("stress") or {}
    if "stress" in summary.get("workloads", []):
        lines.append(f"stress-ng tests: {stress.get('results')} of {stress.get('tests')} reported")
        rows = [row for row in report.get("stress") or [] if row.get("bogo_ops_per_second_real") is not None]
        if rows:
            best = max(rows, key=lambda row: row["bogo_ops_per_second_real"])
            lines.append(
                f"fastest CPU method: {best.get('method')} at {best['bogo_ops_per_second_real']:,.0f} bogo-ops/s "
                f"(stress-ng {', '.join(stress.get('stress_ng_versions', []))})"
            )
    paths = summary.get("shortest_path") or {}
    if "shortest_path" in summary.get("workloads", []):
        graph = paths.get("graph") or {}
        lines.append(
            f"shortest paths: {paths.get('origins_with_results')} of {paths.get('origins')} origins in "
            f"{paths.get('shard_results')} of {paths.get('shards')} shards, on a graph of "
            f"{graph.get('nodes')} nodes and {graph.get('arcs')} arcs"
        )
        central = (report.get("shortest_paths") or {}).get("top_central") or []
        if central:
            lines.append(
                f"most central node: {central[0]['origin']} (closeness {central[0]['closeness']:.4g})"
            )
    missing = summary.get("missing") or {}
    if any(missing.values()):
        lines.append(f"missing: {missing}")
    return lines


def summarize_report(results_uri: str, dag_id: str, run_id: str) -> dict[str, Any]:
    """Read a run's ``report/report.json``, log what a person wants to see first, and return where the
    report is.

    :raises FileNotFoundError: naming the report that the aggregator should have written.
    """
    folder = run_folder_uri(results_uri, dag_id, run_id)
    report_uri = f"{folder}/report/report.json"
    try:
        report = read_json(report_uri)
    except FileNotFoundError:
        raise FileNotFoundError(f"the aggregator wrote no report: {report_uri} does not exist") from None
    headlines = report_headlines(report)
    for line in headlines:
        log.info("%s", line)
    html = f"{folder}/report/report.html"
    log.info("report: %s", html)
    return {"report_html": html, "report_json": report_uri, "headlines": headlines}


def submit_job(task_id: str, definition: str, **kwargs: Any) -> Any:
    """A :class:`~batch_fanout.operators.batch.BatchFanoutOperator` running the run's pinned revision
    of ``definition`` on the project's queue, with the run's results link and the submission pool."""
    from batch_fanout.operators.batch import BatchFanoutOperator

    kwargs.setdefault("poll_interval", POLL_SECONDS)
    return BatchFanoutOperator(
        task_id=task_id,
        job_name=kwargs.pop("job_name", definition),
        job_definition=pinned_job_definition(definition),
        job_queue=JOB_QUEUE,
        results_uri=RESULTS_URI,
        pool=SUBMISSION_POOL,
        **kwargs,
    )


def watch_job(name: str, job: Any, **kwargs: Any) -> Any:
    """A :class:`~batch_fanout.sensors.batch.BatchFanoutSensor` on the job that ``job`` submitted."""
    from batch_fanout.sensors.batch import BatchFanoutSensor

    kwargs.setdefault("poke_interval", POLL_SECONDS)
    return BatchFanoutSensor(task_id=f"watch_{name}", job_id=job.output, **kwargs)


def register_job_definitions() -> Any:
    """The task that registers (or reuses) every job definition and returns ``name -> name:revision``."""
    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    return RegisterJobDefinitionsOperator(task_id=REGISTER_TASK_ID)


def report_task(**task_kwargs: Any) -> Any:
    """A task that reads the run's ``report.json`` and returns where the report is."""
    from airflow.sdk import get_current_context, task

    @task(task_id="report", **task_kwargs)
    def report() -> dict[str, Any]:
        context = get_current_context()
        results_uri = context["var"]["value"].batch_fanout_results_uri
        return summarize_report(results_uri, context["dag"].dag_id, context["run_id"])

    return report()


def leader_array_aggregator(
    *,
    leader_parameters: dict[str, str],
    array_task_id: str,
    array_definition: str,
    array_size: str,
    array_dependency_type: str | None,
    array_parameters: dict[str, str] | None = None,
) -> None:
    """The leader → array → aggregator graph, submitted at once with Batch dependencies, then one
    sensor per stage and the report, in the DAG being defined.

    :param leader_parameters: the leader job's ``Ref::`` parameters (templated)
    :param array_task_id: the submitting task's id, ``submit_<name>``; its sensor is ``watch_<name>``
    :param array_definition: the array's job definition name
    :param array_size: the number of children (templated)
    :param array_dependency_type: ``N_TO_N`` or ``None`` (plain) on the leader
    :param array_parameters: the array job's ``Ref::`` parameters (templated)
    """
    from airflow.sdk import chain

    register = register_job_definitions()
    leader = submit_job(
        "submit_leader",
        LEADER,
        parameters=leader_parameters,
        container_overrides=job_overrides(),
        wait_for_completion=False,
    )
    array = submit_job(
        array_task_id,
        array_definition,
        array_size=array_size,
        parameters=array_parameters,
        depends_on=[{"job_id": leader.output, "type": array_dependency_type}],
        container_overrides=job_overrides(fail_once=True),
        wait_for_completion=False,
    )
    aggregate = submit_job(
        "submit_aggregator",
        AGGREGATOR,
        parameters={"tolerated_failures": "0"},
        depends_on=[{"job_id": array.output, "type": None}],
        container_overrides=job_overrides(),
        wait_for_completion=False,
    )
    register >> leader
    chain(
        aggregate,
        watch_job("leader", leader),
        watch_job(array_task_id.removeprefix("submit_"), array),
        watch_job("aggregator", aggregate),
        report_task(),
    )
