"""
### batch_fanout: the leader → fan-out → aggregate pipeline on AWS Batch, in two submission modes

One run does both reference workloads:

1. **leader**: lists stress-ng CPU methods and writes `stress-tests.txt`; generates a road-like graph
   (or reads the DIMACS `.gr` given as `graph`) and plans it into shards of origin nodes;
2. **stress-ng array**: child *i* runs test *i* and writes `stress/<i>.json`;
3. **shortest-path array**: child *i* computes shortest paths from every origin of shard *i*. It is
   linked to the stress-ng array with `N_TO_N`, so shard *i* starts as soon as stress test *i* is
   done, not when every test is;
4. **aggregator**: checks that every output is there and writes the report (`report/report.html`,
   tables, plots and `report.json`) under `<results>/<dag_id>/<run_id>/`.

The same pipeline is two DAGs, one per submission mode:

- **`batch_fanout`** (all at once, daily): every job is submitted at the start with AWS Batch
  `dependsOn`, so Batch starts each job the moment its dependencies end, with no polling gap; one
  sensor per stage shows progress and copies failed children's logs into the task log. AWS Batch
  fails every dependent of a failed job, so a failed child fails the run: clear the failed stage's
  submit task with its downstream tasks and only the failed children (and the dependents of their
  indices) run again.
- **`batch_fanout_stage_by_stage`** (on demand): each stage is submitted only after Airflow has seen
  the previous one succeed; array sizes come from the leader's manifest. A failed child fails its
  task, and the task's retry resubmits only the failed children, each on its original index;
  `tolerated_failures` children may fail with the run still succeeding.

**Trigger it** from the UI (the form offers every parameter), or:

```
airflow dags test batch_fanout
airflow dags trigger batch_fanout --conf '{"tests": 8, "stress_duration": 10}'
airflow dags trigger batch_fanout_stage_by_stage --conf '{"tests": 8, "tolerated_failures": 1}'
```

It reads the connection `batch_fanout_aws` (the local endpoint or AWS) and the variable
`batch_fanout_results_uri`. Catch-up is off because each run measures the machines as they are now,
and one run at a time keeps runs from competing for the same compute environment.
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
from airflow.sdk import DAG, Param, get_parsing_context

from batch_fanout.fanout import Mode
from batch_fanout_project import pipeline as p

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


def params(mode: Mode) -> dict[str, Param]:
    """The trigger form of the pipeline in ``mode``."""
    staged = mode == "stage_by_stage"
    form = {
        "tests": Param(
            4,
            type="integer",
            minimum=1,
            maximum=10_000,
            title="Work size",
            description="Number of stress-ng tests, and of shortest-path shards (the arrays are linked per index).",
        ),
        **p.stress_params(with_other_workloads=True),
        **p.graph_params(),
        **p.fail_once_params(
            "Logical indices whose stress-ng child fails on its first try. "
            + (
                "The task's retry reruns only those."
                if staged
                else "The run fails, and clearing submit_stress_ng (with downstream) reruns only those."
            )
        ),
    }
    if staged:
        form["tolerated_failures"] = Param(
            0,
            type="integer",
            minimum=0,
            title="Tolerated failed children",
            description="Children of each array that may fail with the run still succeeding.",
        )
    return form


def batch_fanout_dag(dag_id: str, mode: Mode, default_schedule: str | None) -> DAG:
    """The pipeline as a DAG submitting in ``mode``."""
    staged = mode == "stage_by_stage"
    tolerated = {"tolerated_failures": "{{ params.tolerated_failures }}"} if staged else {}

    @p.dag(
        dag_id,
        default_schedule=default_schedule,
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=6),
        tags=["stress-ng", "shortest-paths", mode],
        doc_md=__doc__,
        params=params(mode),
    )
    def pipeline() -> None:
        p.fanout(
            mode=mode,
            leader=p.job("leader", p.LEADER, parameters=LEADER_PARAMETERS),
            arrays=[
                p.array(
                    "stress_ng",
                    p.STRESS_NG,
                    # Stage by stage, the size comes from the leader's manifest.
                    size=None if staged else "{{ params.tests }}",
                    dependency="N_TO_N",
                    container_overrides=p.job_overrides(fail_once=True),
                    **tolerated,
                ),
                p.array(
                    "shortest_path",
                    p.SHORTEST_PATH,
                    size=None if staged else "{{ params.tests }}",
                    dependency="N_TO_N",
                    **tolerated,
                ),
            ],
            aggregator=p.job(
                "aggregator",
                p.AGGREGATOR,
                parameters={"tolerated_failures": tolerated.get("tolerated_failures", "0")},
            ),
        )

    built: DAG = pipeline()
    return built


# A task's process, and `airflow dags test`, parse the file for one DAG (Airflow's parsing context
# names it): only that one is built. The DAG processor parses for every DAG and gets both.
_PARSING_FOR = get_parsing_context().dag_id
if _PARSING_FOR in (None, "batch_fanout"):
    batch_fanout = batch_fanout_dag("batch_fanout", "all_at_once", "@daily")
if _PARSING_FOR in (None, "batch_fanout_stage_by_stage"):
    batch_fanout_stage_by_stage = batch_fanout_dag("batch_fanout_stage_by_stage", "stage_by_stage", None)
