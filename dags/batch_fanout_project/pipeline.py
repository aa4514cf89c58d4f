"""What the project's DAGs share: names, the DAG arguments every project DAG has (:func:`dag`), the
trigger-form parameters of the workloads, default arguments, job environments, the fan-out of the
project's jobs, and the task that reads a run's report.

Every name the project's DAGs use for Airflow and AWS Batch objects is written here once. Everything
here is cheap to import and makes no network call, so DAG files that use it parse fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_fanout.fanout import Array, FanOut, Mode, Preflight, Stage, fan_out
from batch_fanout.notifications.failure import RunFailureNotifier

if TYPE_CHECKING:
    from airflow.sdk import DAG, BaseOperator, Context

#: The Airflow AWS connection of every project DAG (the local endpoint or AWS).
AWS_CONN_ID = "batch_fanout_aws"
JOB_QUEUE = "batch-fanout-queue"
SUBMISSION_POOL = "batch_submissions"
OWNER = "batch-fanout"

#: The Airflow variable holding the results store's URI (``file://`` locally, ``s3://`` on AWS).
RESULTS_VARIABLE = "batch_fanout_results_uri"
#: The same, for templated fields: rendered by Airflow when the task runs.
RESULTS_URI = "{{ var.value." + RESULTS_VARIABLE + " }}"
# The Slack incoming-webhook connection failures are posted to; empty (the default) posts nothing.
SLACK_CONN_ID = "{{ var.value.get('batch_fanout_slack_conn_id', '') }}"
RUN_PREFIX = "{{ dag.dag_id }}/{{ run_id }}"
REGISTER_TASK_ID = "register_job_definitions"

LEADER = "batch-fanout-leader"
STRESS_NG = "batch-fanout-stress-ng"
SHORTEST_PATH = "batch-fanout-shortest-path"
AGGREGATOR = "batch-fanout-aggregator"
STEP = "batch-fanout-step"
#: Every job definition of the project (include/specs/job-definitions/).
JOB_DEFINITIONS = (LEADER, STRESS_NG, SHORTEST_PATH, AGGREGATOR, STEP)
#: The project's specs, beside its DAG folder (``include/`` of an Airflow or Astro project; the
#: deployment image copies them there too).
SPECS_DIR = Path(__file__).resolve().parents[2] / "include" / "specs"

# Seconds between DescribeJobs polls. One call per poll whatever the array size, so a short interval
# is cheap; it bounds how late Airflow notices that a job ended.
POLL_SECONDS = 5

#: The start of every project DAG's schedule. Catch-up is off for every one of them: an interval that
#: was missed is not run afterwards (each DAG's documentation says why).
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The tags every project DAG carries before its own.
TAGS = ("batch-fanout", "aws-batch")
#: The leader's grammar of a stress-ng CPU method filter: ``all``, ``none`` or a comma list.
METHOD_LIST = r"^(all|none|[a-z0-9]+(,[a-z0-9]+)*)$"


def dag(
    dag_id: str,
    *,
    default_schedule: str | None,
    max_active_runs: int,
    dagrun_timeout: timedelta,
    tags: Sequence[str],
    doc_md: str | None,
    params: Mapping[str, Any],
    **dag_arguments: Any,
) -> Callable[[Callable[[], None]], Callable[[], DAG]]:
    """Airflow's ``@dag`` with what every project DAG shares: it starts at :data:`START_DATE` with
    catch-up off, its tasks take :func:`default_args`, its schedule is ``default_schedule`` unless
    the environment overrides it (:func:`schedule`), and its tags are :data:`TAGS` then ``tags``.

    :param dag_id: the DAG's id.
    :param default_schedule: its schedule (a cron expression, a preset, or ``None`` for on demand).
    :param max_active_runs: how many of its runs may go at once.
    :param dagrun_timeout: how long one of its runs may take.
    :param tags: its own tags, after :data:`TAGS`.
    :param doc_md: its documentation (the DAG file's docstring).
    :param params: its trigger form.
    :param dag_arguments: any other argument of Airflow's ``@dag``.
    """
    from airflow.sdk import dag as airflow_dag

    return airflow_dag(
        dag_id=dag_id,
        schedule=schedule(dag_id, default_schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=max_active_runs,
        dagrun_timeout=dagrun_timeout,
        default_args=default_args(),
        tags=[*TAGS, *tags],
        doc_md=doc_md,
        params=dict(params),
        **dag_arguments,
    )


def stress_params(*, stressors: bool = False, with_other_workloads: bool = False) -> dict[str, Any]:
    """The trigger form's stress-ng parameters (``stress_duration``, ``methods``,
    ``exclude_methods``) of the DAGs that run stress-ng tests.

    :param stressors: also offer ``stressors``, the CPU stressors per test (else the DAG sets them).
    :param with_other_workloads: the DAG runs other workloads too, so the titles say which tests and
        methods are stress-ng's.
    """
    from airflow.sdk import Param

    stress, stress_ng = ("stress ", "stress-ng ") if with_other_workloads else ("", "")
    form: dict[str, Any] = {
        "stress_duration": Param(
            2,
            type="integer",
            minimum=1,
            maximum=3600,
            title=f"Seconds per {stress}test",
            description="How long each stress-ng test runs (its --timeout).",
        )
    }
    if stressors:
        form["stressors"] = Param(
            1,
            type="integer",
            minimum=1,
            maximum=64,
            title="stress-ng CPU stressors per test",
            description="Parallel CPU stressors in each test (stress-ng --cpu N).",
        )
    # The two method filters; each one's default is the word it takes instead of a list.
    for name, default, verb, description in (
        (
            "methods",
            "all",
            "include",
            "The CPU methods the leader may pick tests from: 'all', or a comma list such as fft,int64.",
        ),
        ("exclude_methods", "none", "exclude", "CPU methods never to test: 'none', or a comma list."),
    ):
        form[name] = Param(
            default,
            type="string",
            pattern=METHOD_LIST,
            title=f"{stress_ng}CPU methods to {verb} (comma list or {default})",
            description=description,
        )
    return form


def fail_once_params(description: str) -> dict[str, Any]:
    """The trigger form's failure injection, ``fail_once_indices``: the logical indices whose child
    fails on its first try (in the jobs given :func:`job_overrides` with ``fail_once=True``).

    :param description: what the injected failure does in this DAG and how its children run again.
    """
    from airflow.sdk import Param

    return {
        "fail_once_indices": Param(
            "none",
            type="string",
            pattern=r"^(none|[0-9]+(,[0-9]+)*)$",
            title="Failure injection",
            description=description,
        )
    }


def graph_params() -> dict[str, Any]:
    """The trigger form's graph parameters (``graph``, ``grid``, ``seed``) of the DAGs that run the
    shortest-path jobs."""
    from airflow.sdk import Param

    return {
        "graph": Param(
            "generate",
            type="string",
            minLength=1,
            title="Graph",
            description="URI of a DIMACS .gr or .gr.gz file (file://, s3://, https://), or 'generate' for a road-like grid.",
        ),
        "grid": Param(
            # Large enough that a child's work, not its start-up, is most of its time (start-up at
            # most 10% of a child's wall: benchmarks/RESULTS.md, Shortest paths).
            "192x192",
            type="string",
            pattern=r"^[1-9][0-9]*x[1-9][0-9]*$",
            title="Generated grid (rows x columns)",
            description="The size of the generated road-like grid when graph is 'generate'.",
        ),
        "seed": Param(
            1,
            type="integer",
            minimum=0,
            title="Seed of the generated graph",
            description="The same seed generates the same graph.",
        ),
    }


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


def run_folder_uri(context: Context) -> str:
    """The running DAG run's folder in the results store: the one way task code reads the results
    URI (templated fields use :data:`RESULTS_URI`)."""
    results_uri = str(context["var"]["value"].get(RESULTS_VARIABLE))
    return f"{results_uri.rstrip('/')}/{context['dag'].dag_id}/{context['run_id']}"


def read_json(uri: str) -> Any:
    """Read one JSON document from the results store (``file://`` or ``s3://``)."""
    import fsspec

    with fsspec.open(uri, "r") as handle:
        return json.load(handle)


def job(name: str, definition: str, **operator_arguments: Any) -> Stage:
    """A plain job of the project: the run's pinned revision of ``definition``, its results folder."""
    operator_arguments.setdefault("container_overrides", job_overrides())
    operator_arguments.setdefault("job_name", definition)
    return Stage(name, pinned_job_definition(definition), **operator_arguments)


def array(name: str, definition: str, **array_arguments: Any) -> Array:
    """An array job of the project (see :func:`job`); ``size``, ``dependency``, ``after`` as
    :class:`~batch_fanout.fanout.Array`."""
    array_arguments.setdefault("container_overrides", job_overrides())
    array_arguments.setdefault("job_name", definition)
    return Array(name, pinned_job_definition(definition), **array_arguments)


def check_run_params(params: Mapping[str, Any], *, aws_conn_id: str) -> None:
    """The project's preflight (:func:`batch_fanout_project.preflight.check_run_params`), imported
    when the task runs so that parsing a DAG file stays light."""
    from batch_fanout_project.preflight import check_run_params as check

    check(params, aws_conn_id=aws_conn_id)


def fanout(
    *,
    leader: Stage,
    arrays: Sequence[Stage],
    aggregator: Stage,
    mode: Mode = "all_at_once",
    report: bool = True,
    preflight: Preflight | None = check_run_params,
) -> FanOut:
    """The project's fan-out in the DAG being defined: register the job definitions, check the
    run's params before anything is submitted (the ``preflight`` task), run the stages
    (:func:`batch_fanout.fanout.fan_out`), then read the report.

    :param leader: the leader job.
    :param arrays: the stages between leader and aggregator.
    :param aggregator: the aggregator job.
    :param mode: ``all_at_once`` or ``stage_by_stage``.
    :param report: end with the task that reads the run's report.
    :param preflight: the check of the run's params before anything is submitted.
    """
    from batch_fanout.operators.specs import RegisterJobDefinitionsOperator

    register = RegisterJobDefinitionsOperator(
        task_id=REGISTER_TASK_ID, specs_dir=str(SPECS_DIR), aws_conn_id=AWS_CONN_ID
    )
    built = fan_out(
        leader=leader,
        arrays=arrays,
        aggregator=aggregator,
        job_queue=JOB_QUEUE,
        mode=mode,
        array_sizes=read_array_sizes if mode == "stage_by_stage" else None,
        preflight=preflight,
        aws_conn_id=AWS_CONN_ID,
        poll_interval=POLL_SECONDS,
        pool=SUBMISSION_POOL,
        results_uri=RESULTS_URI,
    )
    register >> built
    if report:
        built >> report_task()
    return built


#: The stage names of the project's arrays, by the workload names of the leader's manifest.
ARRAY_STAGES = {"stress": "stress_ng", "shortest_path": "shortest_path"}


def read_array_sizes(context: Context) -> Mapping[str, int]:
    """The array sizes the leader planned, from its ``manifest.json`` (``stage_by_stage`` runs), by
    stage name."""
    manifest = read_json(f"{run_folder_uri(context)}/manifest.json")
    return {ARRAY_STAGES.get(name, name): int(size) for name, size in manifest["array_sizes"].items()}


def report_task(**task_kwargs: Any) -> BaseOperator:
    """A task that reads the run's ``report.json``, logs its headlines and returns where it is."""
    from airflow.sdk import get_current_context, task

    @task(task_id="report", **task_kwargs)
    def report() -> dict[str, Any]:
        from batch_fanout_project.report import summarize_report

        return summarize_report(run_folder_uri(get_current_context()))

    return report().operator  # type: ignore[attr-defined]
