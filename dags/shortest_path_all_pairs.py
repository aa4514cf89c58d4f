"""
### shortest_path_all_pairs: all-pairs shortest paths, sharded by origin

1. **leader**: reads a weighted directed graph (DIMACS `.gr`, plain or gzip, from any URI: `file://`,
   `s3://`, `https://`) or generates a road-like one, validates it (header counts, node ids, integer
   costs; errors name the line), keeps the cheapest of parallel arcs, writes it once in a compact
   binary form and plans balanced shards of origin nodes;
2. **shortest-path array**: child *i* loads the graph and computes single-source shortest paths from
   every origin of shard *i* (reachable count, distance sum, eccentricity, closeness per origin; full
   rows and printed paths for the origins in `paths_for`). Its memory is bounded by its shard, never
   by the all-pairs matrix;
3. **aggregator**: checks that every shard reported and writes the report (`shortest_paths.csv`,
   distributions of eccentricity and closeness, the most central nodes, `report.html`).

The jobs are submitted at once with AWS Batch `dependsOn`; sensors show progress.

**Trigger it** from the UI form or with
`airflow dags trigger shortest_path_all_pairs --conf '{"graph": "s3://bucket/rome99.gr", "shards": 8}'`.
On demand only (set `BATCH_FANOUT_SCHEDULE_SHORTEST_PATH_ALL_PAIRS` to a cron expression to schedule
it); catch-up is off, and several runs may go at once since each has its own results folder.
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
    "shortest_path_all_pairs",
    default_schedule=None,
    max_active_runs=2,
    dagrun_timeout=timedelta(hours=12),
    tags=["shortest-paths"],
    doc_md=__doc__,
    params={
        **p.graph_params(),
        "shards": Param(
            4,
            type="integer",
            minimum=1,
            maximum=10_000,
            title="Number of shards (array children)",
            description="The origins are split into this many balanced shards, one array child each.",
        ),
        "origins": Param(
            "all",
            type="string",
            pattern=r"^(all|[0-9]+|[0-9]+(,[0-9]+)+)$",
            title="Origins",
            description="'all', a count spread over the node ids, or a comma list of node ids.",
        ),
        "paths_for": Param(
            "none",
            type="string",
            pattern=r"^(none|[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*)$",
            title="Print paths for",
            description="'none', or ORIGIN or ORIGIN:TARGET entries (node ids) whose full paths are written.",
        ),
        **p.fail_once_params(
            "Shard indices that fail on their first try: the run fails; clear submit_shortest_path (with downstream) and only those shards run again."
        ),
    },
)
def shortest_path_all_pairs() -> None:
    p.fanout(
        leader=p.job(
            "leader",
            p.LEADER,
            parameters={
                "workloads": "shortest_path",
                "graph": "{{ params.graph }}",
                "grid": "{{ params.grid }}",
                "seed": "{{ params.seed }}",
                "shards": "{{ params.shards }}",
                "origins": "{{ params.origins }}",
            },
        ),
        arrays=[
            p.array(
                "shortest_path",
                p.SHORTEST_PATH,
                size="{{ params.shards }}",
                # Every shard needs the whole graph the leader wrote.
                dependency=None,
                parameters={"paths_for": "{{ params.paths_for }}"},
                container_overrides=p.job_overrides(fail_once=True),
            )
        ],
        aggregator=p.job("aggregator", p.AGGREGATOR, parameters={"tolerated_failures": "0"}),
    )


shortest_path_all_pairs()
