"""
### stress_ng_leader_follower: the leader / follower job-dependency pattern

The classic AWS Batch workshop pattern, run from Airflow:

1. **leader**: lists the CPU methods of the installed stress-ng, applies the method filters, and
   writes `stress-tests.txt`, one stress-ng argument line per test;
2. **follower array**: one child per line; child *i* runs test *i* and writes `stress/<i>.json`
   (bogo-ops, bogo-ops/s, CPU time, max RSS, stress-ng version). It depends on the leader with an
   `N_TO_N` dependency;
3. **aggregator**: checks that every test reported and writes the report (`report/report.html`,
   `stress.csv`, a bogo-ops/s plot per method, `report.json`).

All three jobs are submitted at once with AWS Batch `dependsOn`; one sensor per stage shows progress
(children per state) and copies failed children's logs into the task log.

**Trigger it** from the UI form, or `airflow dags test stress_ng_leader_follower`, or
`airflow dags trigger stress_ng_leader_follower --conf '{"tests": 12, "stress_duration": 30}'`.

Scheduled hourly (override with the environment variable
`BATCH_FANOUT_SCHEDULE_STRESS_NG_LEADER_FOLLOWER`); catch-up is off because an hour that was missed
cannot be measured afterwards, and one run at a time keeps runs from stressing the same machines.
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
from airflow.sdk import Param

from batch_fanout_project import pipeline as p


@p.dag(
    "stress_ng_leader_follower",
    default_schedule="@hourly",
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    tags=["stress-ng"],
    doc_md=__doc__,
    params={
        "tests": Param(
            4,
            type="integer",
            minimum=1,
            maximum=10_000,
            title="Number of stress-ng tests",
            description="One follower child per test.",
        ),
        **p.stress_params(stressors=True),
        **p.fail_once_params(
            "Logical indices whose child fails on its first try: the run fails; clear submit_followers (with downstream) and only those children run again."
        ),
    },
)
def stress_ng_leader_follower() -> None:
    p.fanout(
        leader=p.job(
            "leader",
            p.LEADER,
            parameters={
                "workloads": "stress",
                "tests": "{{ params.tests }}",
                "stress_duration": "{{ params.stress_duration }}",
                "stress_cpus": "{{ params.stressors }}",
                "methods": "{{ params.methods }}",
                "exclude_methods": "{{ params.exclude_methods }}",
            },
        ),
        arrays=[
            p.array(
                "followers",
                p.STRESS_NG,
                size="{{ params.tests }}",
                # The workshop's pattern: each follower waits for the leader with an N_TO_N dependency.
                dependency="N_TO_N",
                container_overrides=p.job_overrides(fail_once=True),
            )
        ],
        aggregator=p.job("aggregator", p.AGGREGATOR, parameters={"tolerated_failures": "0"}),
    )


stress_ng_leader_follower()
