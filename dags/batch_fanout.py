"""
### batch_fanout: the daily leader → fan-out → aggregate pipeline on AWS Batch

One run does both reference workloads:

1. **leader**: lists stress-ng CPU methods and writes `stress-tests.txt`; generates a road-like graph
   (or reads the DIMACS `.gr` given as `graph`) and plans it into shards of origin nodes;
2. **stress-ng array**: child *i* runs test *i* and writes `stress/<i>.json`;
3. **shortest-path array**: child *i* computes shortest paths from every origin of shard *i*. It is
   linked to the stress-ng array with `N_TO_N`, so shard *i* starts as soon as stress test *i* is
   done, not when every test is;
4. **aggregator**: checks that every output is there and writes the report (`report/report.html`,
   tables, plots and `report.json`) under `<results>/batch_fanout/<run_id>/`.

**Submission modes** (`submission_mode`):

- `all_at_once` (default): every job is submitted at the start with AWS Batch `dependsOn`, so Batch
  starts each job the moment its dependencies end, with no polling gap; one sensor per stage shows
  progress and copies failed children's logs into the task log. AWS Batch fails every dependent of a
  failed job, so this mode takes `tolerated_failures = 0`, and a failed child fails the run: clear
  the failed stage's submit task with its downstream tasks and only the failed children (and the
  dependents of their indices) run again.
- `stage_by_stage`: each stage is submitted only after Airflow has seen the previous one succeed;
  array sizes come from the leader's manifest. A failed child fails its task, and the task's retry
  resubmits only the failed children, each on its original index.

**Trigger it** from the UI (the form offers every parameter), or:

```
airflow dags test batch_fanout
airflow dags trigger batch_fanout --conf '{"tests": 8, "stress_duration": 10}'
```

It reads the connection `batch_fanout_aws` (the local endpoint or AWS) and the variable
`batch_fanout_results_uri`. Scheduled daily; catch-up is off because each run measures the machines
as they are now, and one run at a time keeps runs from competing for the same compute environment.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

# Airflow's DAG processor imports the airflow.* modules a DAG file names once, before it parses each
# file in a fresh process (``parsing_pre_import_modules``); naming the Amazon provider's Batch modules
# that the project's operators build on (and the @task decorators, which airflow.sdk loads lazily)
# keeps their import out of every parse of this file.
import airflow.providers.amazon.aws.operators.batch
import airflow.providers.amazon.aws.sensors.base_aws
import airflow.sdk.definitions.decorators  # noqa: F401  (airflow.sdk loads @task lazily)
from airflow.sdk import Param, TaskGroup, chain, dag, get_current_context, task

from batch_fanout import pipeline as p

LEADER_PARAMETERS = {
    "workloads": "stress,shortest_path",
    "tests": "{{ params.tests }}",
    "stress_duration": "{{ params.stress_duration }}",
    "stress_cpus": "1",
    "methods": "{{ params.methods }}",
    "exclude_methods": "{{ params.exclude_methods }}",
    "graph": "{{ params.graph }}",
    "grid": "{{ params.grid }}",
    "edge_probability": "0.7",
    "seed": "{{ params.seed }}",
    # The two arrays are linked per index, so there is one shard per stress test.
    "shards": "{{ params.tests }}",
    "origins": "all",
}
AGGREGATOR_PARAMETERS = {"tolerated_failures": "{{ params.tolerated_failures }}"}
METHOD_LIST = r"^(all|none|[a-z0-9]+(,[a-z0-9]+)*)$"


@dag(
    dag_id="batch_fanout",
    schedule=p.schedule("batch_fanout", "@daily"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=p.default_args(),
    tags=["batch-fanout", "aws-batch", "stress-ng", "shortest-paths"],
    doc_md=__doc__,
    params={
        "tests": Param(
            4,
            type="integer",
            minimum=1,
            maximum=10_000,
            title="Work size",
            description="Number of stress-ng tests, and of shortest-path shards (the arrays are linked per index).",
        ),
        "stress_duration": Param(2, type="integer", minimum=1, maximum=3600, title="Seconds per stress test"),
        "methods": Param(
            "all",
            type="string",
            pattern=METHOD_LIST,
            title="stress-ng CPU methods to include (comma list or all)",
        ),
        "exclude_methods": Param(
            "none",
            type="string",
            pattern=METHOD_LIST,
            title="stress-ng CPU methods to exclude (comma list or none)",
        ),
        "graph": Param(
            "generate",
            type="string",
            minLength=1,
            title="Graph",
            description="URI of a DIMACS .gr or .gr.gz file (file://, s3://, https://), or 'generate' for a road-like grid.",
        ),
        "grid": Param(
            "192x192",
            type="string",
            pattern=r"^[1-9][0-9]*x[1-9][0-9]*$",
            title="Generated grid (rows x columns)",
        ),
        "seed": Param(1, type="integer", minimum=0, title="Seed of the generated graph"),
        "tolerated_failures": Param(
            0,
            type="integer",
            minimum=0,
            title="Tolerated failed children",
            description="Children that may fail with the run still succeeding (stage_by_stage only).",
        ),
        "submission_mode": Param(
            p.ALL_AT_ONCE,
            enum=[p.ALL_AT_ONCE, p.STAGE_BY_STAGE],
            title="Submission mode",
            description="all_at_once: one graph of Batch dependencies; stage_by_stage: Airflow submits each stage after the last.",
        ),
        "fail_once_indices": Param(
            "none",
            type="string",
            pattern=r"^(none|[0-9]+(,[0-9]+)*)$",
            title="Failure injection",
            description="Logical indices whose stress-ng child fails on its first try. stage_by_stage: the task retry reruns only those; all_at_once: the run fails, and clearing submit_stress_ng reruns only those.",
        ),
    },
)
def batch_fanout() -> None:
    register = p.register_job_definitions()

    @task.branch
    def choose_submission_mode() -> str:
        params = get_current_context()["params"]
        mode = params["submission_mode"]
        if mode == p.ALL_AT_ONCE and params["tolerated_failures"] > 0:
            raise ValueError(
                "tolerated_failures > 0 needs submission_mode stage_by_stage: with all_at_once, AWS Batch "
                "fails every job that depends on a failed one"
            )
        return "all_at_once.submit_leader" if mode == p.ALL_AT_ONCE else "stage_by_stage.run_leader"

    submission_mode = choose_submission_mode()
    register >> submission_mode

    with TaskGroup("all_at_once") as all_at_once:
        leader = p.submit_job(
            "submit_leader",
            p.LEADER,
            parameters=LEADER_PARAMETERS,
            container_overrides=p.job_overrides(),
            wait_for_completion=False,
        )
        stress = p.submit_job(
            "submit_stress_ng",
            p.STRESS_NG,
            array_size="{{ params.tests }}",
            depends_on=[{"job_id": leader.output, "type": "N_TO_N"}],
            container_overrides=p.job_overrides(fail_once=True),
            wait_for_completion=False,
        )
        shortest = p.submit_job(
            "submit_shortest_path",
            p.SHORTEST_PATH,
            array_size="{{ params.tests }}",
            depends_on=[{"job_id": stress.output, "type": "N_TO_N"}, {"job_id": leader.output, "type": None}],
            container_overrides=p.job_overrides(),
            wait_for_completion=False,
        )
        aggregate = p.submit_job(
            "submit_aggregator",
            p.AGGREGATOR,
            parameters=AGGREGATOR_PARAMETERS,
            depends_on=[{"job_id": stress.output, "type": None}, {"job_id": shortest.output, "type": None}],
            container_overrides=p.job_overrides(),
            wait_for_completion=False,
        )
        # Every job is in Batch before the first sensor starts; the sensors then follow the stages.
        watchers = [
            p.watch_job("leader", leader),
            p.watch_job("stress_ng", stress),
            p.watch_job("shortest_path", shortest),
            p.watch_job("aggregator", aggregate),
        ]
        aggregate >> watchers[0]
        chain(*watchers)

    with TaskGroup("stage_by_stage") as stage_by_stage:
        staged_leader = p.submit_job(
            "run_leader", p.LEADER, parameters=LEADER_PARAMETERS, container_overrides=p.job_overrides()
        )

        @task
        def read_array_sizes() -> dict[str, int]:
            """The array sizes the leader planned, read from its manifest: the upstream output that
            sizes the next stages."""
            context = get_current_context()
            folder = p.run_folder_uri(
                context["var"]["value"].batch_fanout_results_uri, context["dag"].dag_id, context["run_id"]
            )
            manifest = p.read_json(f"{folder}/manifest.json")
            return {name: int(size) for name, size in manifest["array_sizes"].items()}

        sizes: Any = read_array_sizes()  # XComArg; sizes["stress"] pulls one key
        staged_leader >> sizes
        staged_stress = p.submit_job(
            "run_stress_ng",
            p.STRESS_NG,
            array_size=sizes["stress"],
            tolerated_failures="{{ params.tolerated_failures }}",
            container_overrides=p.job_overrides(fail_once=True),
        )
        staged_shortest = p.submit_job(
            "run_shortest_path",
            p.SHORTEST_PATH,
            array_size=sizes["shortest_path"],
            tolerated_failures="{{ params.tolerated_failures }}",
            container_overrides=p.job_overrides(),
        )
        staged_aggregate = p.submit_job(
            "run_aggregator",
            p.AGGREGATOR,
            parameters=AGGREGATOR_PARAMETERS,
            container_overrides=p.job_overrides(),
        )
        chain(staged_stress, staged_shortest, staged_aggregate)

    submission_mode >> [all_at_once, stage_by_stage]
    [all_at_once, stage_by_stage] >> p.report_task(trigger_rule="none_failed_min_one_success")


batch_fanout()
