"""
### job_dependency_graph: the "master job" pattern, without the master job

Six jobs with this dependency graph:

```
A ──▶ B ──▶ D ──▶ F
│           ▲     ▲
├───────────┘     │
└──▶ C ──▶ E ─────┘
```

(A → B, C, D; B → D; C → E; D, E → F.) Without an orchestrator someone writes a script that submits
A, reads its job id, submits B with `dependsOn`, and so on, and then polls. Here Airflow submits all six
at once, each with `dependsOn` the job ids of its upstream jobs (passed through XCom), and AWS Batch
starts each job the moment its dependencies succeed. A sensor per job shows its state.

Each job is a **step** (`batch-fanout-step`): it checks that the steps it runs after have finished
(and fails if not, which would mean the dependency gate was broken), works for `work_seconds`, and
records when it ran under `steps/` in the run's results folder. F writes `steps/summary.json`, the
order in which the steps ran.

The DAG `job_dependency_graph_stage_by_stage` is the same graph with no `dependsOn`: Airflow submits
each step once it saw the one before succeed, one after another (to compare the two modes).

**Trigger it** from the UI form or `airflow dags test job_dependency_graph`. On demand only (set
`BATCH_FANOUT_SCHEDULE_JOB_DEPENDENCY_GRAPH` to schedule it); catch-up is off.
"""

from __future__ import annotations

from datetime import timedelta

# Airflow's DAG processor imports the airflow.* modules a DAG file names once, before it parses each
# file in a fresh process (``parsing_pre_import_modules``); naming the Amazon provider's Batch modules
# that the project's operators build on (and the @task decorators, which airflow.sdk loads lazily)
# keeps their import out of every parse of this file.
import airflow.providers.amazon.aws.operators.batch
import airflow.providers.amazon.aws.sensors.base_aws
import airflow.sdk.definitions.decorators  # noqa: F401  (airflow.sdk loads @task lazily)
from airflow.sdk import DAG, Param, get_current_context, get_parsing_context, task

from batch_fanout.fanout import Mode, Stage
from batch_fanout_project import pipeline as p

# Each step and the steps it runs after.
GRAPH: dict[str, list[str]] = {
    "A": [],
    "B": ["A"],
    "C": ["A"],
    "D": ["A", "B"],
    "E": ["C"],
    "F": ["D", "E"],
}


def job_dependency_graph_dag(dag_id: str = "job_dependency_graph", mode: Mode = "all_at_once") -> DAG:
    """The graph as a DAG submitting in ``mode``: ``all_at_once`` (``job_dependency_graph``) gives
    each job ``dependsOn`` its upstream jobs; ``stage_by_stage`` (``job_dependency_graph_stage_by_stage``,
    for comparison, measured by ``benchmarks/pipeline.py``) runs the steps one after another in the
    order of :data:`GRAPH`, each once Airflow saw the last succeed."""

    @p.dag(
        dag_id,
        default_schedule=None,
        max_active_runs=4,
        dagrun_timeout=timedelta(hours=2),
        tags=["dependencies"],
        doc_md=__doc__,
        params={
            "work_seconds": Param(
                1,
                type="integer",
                minimum=0,
                maximum=3600,
                title="Seconds of work per step",
                description="How long each step works before it records that it ran.",
            ),
        },
    )
    def job_dependency_graph() -> None:
        def step(name: str, upstream: list[str]) -> Stage:
            return p.job(
                name,
                p.STEP,
                job_name=f"batch-fanout-step-{name}",
                after=upstream or None,
                parameters={
                    "name": name,
                    "after": ",".join(upstream) or "none",
                    "work_seconds": "{{ params.work_seconds }}",
                    "summarize": ",".join(GRAPH) if name == "F" else "none",
                },
            )

        steps = [step(name, upstream) for name, upstream in GRAPH.items()]
        # A is the leader and F the aggregator; B..E are plain jobs between them. There is no array
        # here, so the graph is declared through the builder's general form: each stage's after=.
        graph = p.fanout(leader=steps[0], arrays=steps[1:-1], aggregator=steps[-1], mode=mode, report=False)

        @task
        def check_order() -> list[str]:
            """Read the order the steps ran in and check it against the graph."""
            summary = p.read_json(f"{p.run_folder_uri(get_current_context())}/steps/summary.json")
            stopped = {record["name"]: record["stopped_at"] for record in summary["steps"]}
            started = {record["name"]: record["started_at"] for record in summary["steps"]}
            for name, upstream in GRAPH.items():
                for step_name in upstream:
                    if started[name] < stopped[step_name]:
                        raise ValueError(
                            f"step {name} started before its upstream step {step_name} had finished"
                        )
            return list(summary["order"])

        graph >> check_order()

    built: DAG = job_dependency_graph()
    return built


# A task's process, and `airflow dags test`, parse the file for one DAG (Airflow's parsing context
# names it): only that one is built. The DAG processor parses for every DAG and gets both.
_PARSING_FOR = get_parsing_context().dag_id
if _PARSING_FOR in (None, "job_dependency_graph"):
    job_dependency_graph = job_dependency_graph_dag()
if _PARSING_FOR in (None, "job_dependency_graph_stage_by_stage"):
    # The same graph without dependsOn, for comparison: what each submission mode costs.
    job_dependency_graph_stage_by_stage = job_dependency_graph_dag(
        "job_dependency_graph_stage_by_stage", "stage_by_stage"
    )
