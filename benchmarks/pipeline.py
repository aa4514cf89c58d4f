"""The ``batch_fanout`` pipeline and the ``job_dependency_graph`` DAG on the local AWS Batch endpoint,
each in both submission modes side by side (the DAGs ``batch_fanout`` and
``batch_fanout_stage_by_stage``; ``job_dependency_graph`` and ``job_dependency_graph_stage_by_stage``,
both of ``dags/job_dependency_graph.py``), and the parse time of every DAG file; prints its
figures (recorded in benchmarks/RESULTS.md), ending with one ``TARGET`` line per DAG and mode.

Each run is measured two ways (``--ways``), interleaved: **cli**, the command a user types,
``airflow dags test <dag_id> -c '<conf>'`` in a fresh process with the project's Airflow home
(``--airflow-home``, as ``make airflow-db`` sets it up) and the environment the script was started
in, so its interpreter start, Airflow's import, plugin and provider discovery, the DAG folder's
parse and serialization to the metadata database are in the figure; and **in_process**,
``dag.test()`` in this process on a fresh, isolated Airflow home, the run alone. Both on real job
containers of ``include/containers`` on a local endpoint (started by the script) whose compute
environment has the machine's CPU count as vCPUs, with the DAG's own poll interval
(``batch_fanout_project.pipeline.POLL_SECONDS``). The command's job ids come from the XComs of its
run in its (SQLite) metadata database.

- **wall**: cli, from the process's start to its exit; in_process, the time ``dag.test()`` takes,
  from the first task to the last (registration of the job definitions and the report task
  included);
- **sum of job run times**: ``stoppedAt - startedAt`` (DescribeJobs) of the leader, the aggregator and
  every array child (array parents are not counted: their children are);
- **critical path**: the longest chain of job run times through the dependency graph that the mode
  gives the jobs, capacity ignored. ``all_at_once``: leader → stress-ng child *i* → shortest-path
  child *i* (``N_TO_N``) → aggregator (after every child of both arrays), i.e. leader +
  max_i(stress_i + path_i) + aggregator. ``stage_by_stage``: Airflow submits a stage once the whole
  previous stage succeeded, so every child of a stage waits for every child of the stage before:
  leader + max_i stress_i + max_i path_i + aggregator. ``job_dependency_graph``: its graph (A → B, C,
  D; B → D; C → E; D, E → F) all at once; stage by stage the steps run one after another, so the
  path is the sum of the six;
- **capacity bound**: max(critical path, sum / vCPUs): no schedule of these jobs on this compute
  environment (every job takes 1 vCPU) ends sooner;
- **Airflow overhead**: wall - critical path; and wall - capacity bound, which leaves out the time jobs
  waited for a free vCPU;
- where the wall time goes: before the first job starts (registration, submission), Batch idle
  between the first start and the last end (no job running: the stage gates), after the last job ends
  (noticing the end, the report task);
- **dependency gaps**: for every job with dependencies in the mode's graph, its ``startedAt`` minus
  the last ``stoppedAt`` of its dependencies (median and max); and the same net of capacity: minus
  the later of that and the last end of any job before it started (a freed vCPU), a lower bound of
  the time the job waited while it could have run.

Parse time of each DAG file, median of ``--parse-runs`` runs, a fresh subprocess per run:

- **cold**: a fresh interpreter imports the DAG file with nothing imported before (Airflow, the
  providers and the project's package are all imported by the file);
- **as the DAG processor**: with ``[dag_processor] parsing_pre_import_modules`` (the default), the
  processor imports the ``airflow.*`` modules the file names (``airflow.utils.file.
  iter_airflow_imports``) before it forks the process that parses the file; the figure is that
  process's ``DagBag`` of the file (import and DAG checks), after the same pre-imports, and its
  serialization on top. Target: under 0.2 s.

Usage::

    .venv/bin/python benchmarks/pipeline.py [--tests 4] [--stress-duration 2] [--grid 64x64]
        [--work-seconds 1] [--repeat 3] [--warmup 1] [--parse-runs 3]
        [--modes all_at_once,stage_by_stage] [--dags batch_fanout,job_dependency_graph]
        [--ways cli,in_process] [--airflow-home .airflow]

Target (DESIGN.md): wall - critical path at most 3 s plus one poll interval, for each DAG and mode,
of the command (the ``TARGET`` lines); the in-process figures are printed beside them.

Exits non-zero if a DAG run fails or a DAG file does not parse.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_DIR = REPO_ROOT / "dags"
# The project's DAG library, as Airflow puts the DAG folder on sys.path.
sys.path.append(str(DAGS_DIR))
DAG_FILE = DAGS_DIR / "batch_fanout_pipeline.py"
GRAPH_DAG_FILE = DAGS_DIR / "job_dependency_graph.py"
PIPELINE = "batch_fanout"
GRAPH_DAG = "job_dependency_graph"
BENCHMARKED_DAGS = (PIPELINE, GRAPH_DAG)
# job_dependency_graph's steps and the steps each runs after (dags/job_dependency_graph.py's GRAPH).
STEPS = {"A": [], "B": ["A"], "C": ["A"], "D": ["A", "B"], "E": ["C"], "F": ["D", "E"]}
# Seconds an honest Airflow may add to the critical path, besides one poll interval (DESIGN.md).
TARGET_SECONDS = 3.0
CONN_ID = "batch_fanout_aws"
COMPUTE_ENVIRONMENT = "batch-fanout-ce"
ALL_AT_ONCE = "all_at_once"
STAGE_BY_STAGE = "stage_by_stage"
MODES = (ALL_AT_ONCE, STAGE_BY_STAGE)
DAG_IDS = {ALL_AT_ONCE: "batch_fanout", STAGE_BY_STAGE: "batch_fanout_stage_by_stage"}
GRAPH_DAG_IDS = {ALL_AT_ONCE: "job_dependency_graph", STAGE_BY_STAGE: "job_dependency_graph_stage_by_stage"}
PIPELINE_STAGES = ("leader", "stress_ng", "shortest_path", "aggregator")
# The task whose XCom return value is each stage's job id, per submission mode.
JOB_TASKS = {
    ALL_AT_ONCE: {
        "leader": "submit_leader",
        "stress_ng": "submit_stress_ng",
        "shortest_path": "submit_shortest_path",
        "aggregator": "submit_aggregator",
    },
    STAGE_BY_STAGE: {
        "leader": "run_leader",
        "stress_ng": "run_stress_ng",
        "shortest_path": "run_shortest_path",
        "aggregator": "run_aggregator",
    },
}
RUN_TIMEOUT_SECONDS = 900
# The two ways a run is measured: the command as a user types it, in a fresh process (start-up, DAG
# folder parse and serialization included), and DAGNode.test() in this process (the run alone).
CLI = "cli"
IN_PROCESS = "in_process"
WAYS = (CLI, IN_PROCESS)
WAY_LABELS = {CLI: "CLI", IN_PROCESS: "dag.test()"}
# A reader of a run's XCom return values, by task id.
XComReader = Callable[[str], Any]

COLD_PARSE = """
import json, sys, time, importlib.util
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("benchmarked_dag_file", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
from airflow.sdk import DAG
dag_ids = sorted(value.dag_id for value in vars(module).values() if isinstance(value, DAG))
modules = sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore"))
print(json.dumps({"seconds": seconds, "dag_ids": dag_ids, "boto": bool(modules)}))
"""

PROCESSOR_PARSE = """
import importlib, json, sys, time
from pathlib import Path
# What the processor's parsing child has before it reads the file: the modules of the processor
# itself, the task runner its entry point imports, and the pre-imported airflow.* modules of the file.
import airflow.dag_processing.processor
import airflow.sdk.execution_time.task_runner
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.utils.file import iter_airflow_imports
path = sys.argv[1]
pre_imported = list(iter_airflow_imports(path))
for name in pre_imported:
    importlib.import_module(name)
boto_before = any(name.split(".")[0] in ("boto3", "botocore") for name in sys.modules)
start = time.perf_counter()
bag = BundleDagBag(dag_folder=path, bundle_path=Path(path).parent, bundle_name="dags-folder", load_op_links=False)
parsed = time.perf_counter()
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
serialized = time.perf_counter()
boto_after = any(name.split(".")[0] in ("boto3", "botocore") for name in sys.modules)
print(json.dumps({
    "seconds": parsed - start,
    "with_serialization": serialized - start,
    "dag_ids": sorted(bag.dag_ids),
    "import_errors": {str(k): v[-2000:] for k, v in bag.import_errors.items()},
    "pre_imported": pre_imported,
    "boto_imported_by_file": boto_after and not boto_before,
}))
"""


@dataclass
class Job:
    """One job of a run (a leader, an aggregator or an array child), times in epoch seconds."""

    key: str
    stage: str
    started: float
    stopped: float
    depends: list[str] = field(default_factory=list)

    @property
    def run_seconds(self) -> float:
        return self.stopped - self.started


@dataclass
class RunFigures:
    dag: str
    mode: str
    way: str
    wall: float
    job_sum: float
    critical_path: float
    capacity_bound: float
    before_first_job: float
    batch_idle: float
    after_last_job: float
    gaps: list[float]
    net_gaps: list[float]
    stage_run_seconds: dict[str, float]
    jobs: int
    load: float
    # The command's phases (cli only), seconds by name: see cli_phases.
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        return self.wall - self.critical_path

    @property
    def overhead_over_bound(self) -> float:
        return self.wall - self.capacity_bound


def prepare_environment(work: Path) -> dict[str, str]:
    """An isolated Airflow home and AWS settings in ``os.environ``, as tests/conftest.py sets them,
    before Airflow is first imported. Returns what was set."""
    airflow_home = work / "airflow"
    airflow_home.mkdir(parents=True)
    settings = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # The extra links and the re-attach check look up XComs a first try has not pushed yet; the
        # API client logs each miss as an error. The run's state says whether anything failed.
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.sdk.api.client=CRITICAL",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(settings)
    for inherited in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(inherited, None)
    return settings


def migrate_database() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, timeout=300
    )
    if completed.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({completed.returncode}):\n{completed.stderr[-3000:]}")


def median_of_runs(code: str, path: Path, runs: int) -> tuple[list[dict[str, Any]], str | None]:
    """Run ``code`` on ``path`` in ``runs`` fresh interpreters; the parsed JSON of each, or an error."""
    results: list[dict[str, Any]] = []
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO_ROOT,
            # The DAG folder on sys.path, as Airflow has it: the files import the project's package.
            env={**os.environ, "PYTHONPATH": str(DAGS_DIR)},
        )
        if completed.returncode != 0:
            return results, f"exit {completed.returncode}: {completed.stderr[-2000:]}"
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return results, None


def benchmark_parsing(runs: int) -> bool:
    """Print the parse times of every DAG file; False if one failed to parse."""
    ok = True
    print(
        f"\nParse time of each DAG file, median of {runs} runs, a fresh interpreter per run (target: < 0.2 s)"
    )
    header = (
        f"{'file':<34} {'cold':>8} {'processor':>10} {'+serialize':>11} {'vs target':>10}  "
        "file imports boto3  DAGs built                    pre-imported"
    )
    print(header)
    for path in sorted(DAGS_DIR.glob("*.py")):
        cold, cold_error = median_of_runs(COLD_PARSE, path, runs)
        processor, processor_error = median_of_runs(PROCESSOR_PARSE, path, runs)
        errors = [error for error in (cold_error, processor_error) if error]
        errors += [f"import error: {run['import_errors']}" for run in processor if run["import_errors"]]
        if errors or not processor or not processor[0]["dag_ids"]:
            ok = False
            print(f"{path.name:<34} FAILED: {errors or 'no DAG found'}")
            continue
        cold_s = statistics.median(run["seconds"] for run in cold)
        parse_s = statistics.median(run["seconds"] for run in processor)
        serialize_s = statistics.median(run["with_serialization"] for run in processor)
        boto = "yes" if processor[0]["boto_imported_by_file"] else "no"
        print(
            f"{path.name:<34} {cold_s:>7.3f}s {parse_s:>9.3f}s {serialize_s:>10.3f}s {parse_s / 0.2:>9.2f}x  "
            f"{boto:<18}  {','.join(processor[0]['dag_ids']):<28}  {', '.join(processor[0]['pre_imported'])}"
        )
    return ok


def read_xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id,
                dag_ids=dag_run.dag_id,
                task_ids=task_id,
                key="return_value",
                map_indexes=-1,
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def describe(batch: Any, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    described: dict[str, dict[str, Any]] = {}
    for first in range(0, len(job_ids), 100):
        for job in batch.describe_jobs(jobs=job_ids[first : first + 100])["jobs"]:
            described[job["jobId"]] = job
    missing = set(job_ids) - set(described)
    if missing:
        raise RuntimeError(f"DescribeJobs does not know the jobs {sorted(missing)}")
    return described


def collect_jobs(batch: Any, xcom: XComReader, mode: str) -> list[Job]:
    """Every job the run's mode ran, with the dependencies the mode gives it."""
    stage_ids = {}
    for stage, task_id in JOB_TASKS[mode].items():
        job_id = xcom(task_id)
        if not isinstance(job_id, str):
            raise RuntimeError(f"task {task_id} left no job id in XCom (got {job_id!r})")
        stage_ids[stage] = job_id
    parents = describe(batch, list(stage_ids.values()))

    def children(stage: str) -> list[str]:
        parent = parents[stage_ids[stage]]
        size = int((parent.get("arrayProperties") or {}).get("size") or 0)
        if size < 2:
            raise RuntimeError(
                f"the {stage} job {parent['jobId']} is not an array job: {parent.get('arrayProperties')}"
            )
        return [f"{parent['jobId']}:{index}" for index in range(size)]

    stress, paths = children("stress_ng"), children("shortest_path")
    described = {**parents, **describe(batch, stress + paths)}
    leader, aggregator = stage_ids["leader"], stage_ids["aggregator"]
    depends: dict[str, tuple[str, list[str]]] = {leader: ("leader", [])}
    for child in stress:
        depends[child] = ("stress_ng", [leader])
    for index, child in enumerate(paths):
        # all_at_once: N_TO_N on the stress-ng array (and the leader); stage_by_stage: Airflow submits
        # the array once the whole stress-ng array has succeeded.
        depends[child] = ("shortest_path", [stress[index], leader] if mode == ALL_AT_ONCE else list(stress))
    depends[aggregator] = ("aggregator", stress + paths if mode == ALL_AT_ONCE else list(paths))

    jobs = []
    for key, (stage, dependencies) in depends.items():
        job = described[key]
        if job.get("status") != "SUCCEEDED" or "startedAt" not in job or "stoppedAt" not in job:
            raise RuntimeError(
                f"job {key} did not run to success: {job.get('status')} {job.get('statusReason')}"
            )
        jobs.append(Job(key, stage, job["startedAt"] / 1000, job["stoppedAt"] / 1000, dependencies))
    return jobs


def collect_graph_jobs(batch: Any, xcom: XComReader, mode: str) -> list[Job]:
    """The six steps of a ``job_dependency_graph`` run, with the dependencies the mode gives them:
    the graph all at once, one step after another (in the DAG's order) stage by stage."""
    prefix = "submit" if mode == ALL_AT_ONCE else "run"
    ids = {}
    for name in STEPS:
        job_id = xcom(f"{prefix}_{name}")
        if not isinstance(job_id, str):
            raise RuntimeError(f"task {prefix}_{name} left no job id (got {job_id!r})")
        ids[name] = job_id
    described = describe(batch, list(ids.values()))
    names = list(STEPS)
    jobs = []
    for position, name in enumerate(names):
        job = described[ids[name]]
        if job.get("status") != "SUCCEEDED" or "startedAt" not in job or "stoppedAt" not in job:
            raise RuntimeError(
                f"step {name} did not run to success: {job.get('status')} {job.get('statusReason')}"
            )
        upstream = STEPS[name] if mode == ALL_AT_ONCE else names[position - 1 : position]
        jobs.append(
            Job(
                ids[name],
                name,
                job["startedAt"] / 1000,
                job["stoppedAt"] / 1000,
                [ids[up] for up in upstream],
            )
        )
    return jobs


def critical_path(jobs: list[Job]) -> float:
    """The longest chain of run times through the dependency graph (capacity ignored)."""
    by_key = {job.key: job for job in jobs}
    finish: dict[str, float] = {}

    def earliest_finish(key: str) -> float:
        if key not in finish:
            job = by_key[key]
            finish[key] = job.run_seconds + max((earliest_finish(dep) for dep in job.depends), default=0.0)
        return finish[key]

    return max(earliest_finish(job.key) for job in jobs)


def busy_seconds(jobs: list[Job]) -> float:
    """The length of the union of the jobs' run intervals: the time at least one job ran."""
    total, end = 0.0, float("-inf")
    for job in sorted(jobs, key=lambda job: job.started):
        if job.started >= end:
            total += job.run_seconds
            end = job.stopped
        elif job.stopped > end:
            total += job.stopped - end
            end = job.stopped
    return total


def figures_of(
    dag: str, mode: str, jobs: list[Job], *, started: float, ended: float, vcpus: int, way: str
) -> RunFigures:
    by_key = {job.key: job for job in jobs}
    stops = sorted(job.stopped for job in jobs)
    gaps, net_gaps = [], []
    for job in jobs:
        if not job.depends:
            continue
        ready = max(by_key[dep].stopped for dep in job.depends)
        gaps.append(job.started - ready)
        freed = max((stop for stop in stops if stop <= job.started), default=ready)
        net_gaps.append(job.started - max(ready, freed))
    first_start = min(job.started for job in jobs)
    last_stop = max(job.stopped for job in jobs)
    job_sum = sum(job.run_seconds for job in jobs)
    path = critical_path(jobs)
    return RunFigures(
        dag=dag,
        mode=mode,
        way=way,
        wall=ended - started,
        job_sum=job_sum,
        critical_path=path,
        capacity_bound=max(path, job_sum / vcpus),
        before_first_job=first_start - started,
        batch_idle=(last_stop - first_start) - busy_seconds(jobs),
        after_last_job=ended - last_stop,
        gaps=gaps,
        net_gaps=net_gaps,
        stage_run_seconds={
            stage: statistics.median(job.run_seconds for job in jobs if job.stage == stage)
            for stage in dict.fromkeys(job.stage for job in jobs)
        },
        jobs=len(jobs),
        load=os.getloadavg()[0],
    )


def load_dags() -> dict[tuple[str, str], Any]:
    """The DAG of each benchmarked DAG and submission mode, by ``(dag, mode)``: each file holds both
    modes of its DAG."""
    from airflow.dag_processing.dagbag import DagBag

    dags = {}
    for dag_name, path, ids in ((PIPELINE, DAG_FILE, DAG_IDS), (GRAPH_DAG, GRAPH_DAG_FILE, GRAPH_DAG_IDS)):
        bag = DagBag(dag_folder=str(path))
        if bag.import_errors:
            raise RuntimeError(f"dags/{path.name} does not import: {bag.import_errors}")
        for mode, dag_id in ids.items():
            dags[(dag_name, mode)] = bag.dags[dag_id]
    return dags


def run_once(
    dag_name: str, dag: Any, mode: str, *, conf: dict[str, Any], batch: Any, vcpus: int
) -> RunFigures:
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    started = time.time()
    dag_run = dag.test(run_conf=conf)
    ended = time.time()
    if dag_run.state != "success":
        failed = [ti.task_id for ti in dag_run.get_task_instances() if ti.state not in ("success", "skipped")]
        raise RuntimeError(f"run {dag_run.run_id} ({dag.dag_id}) ended {dag_run.state}; tasks: {failed}")
    collect = collect_jobs if dag_name == PIPELINE else collect_graph_jobs
    jobs = collect(batch, lambda task_id: read_xcom(dag_run, task_id), mode)
    return figures_of(dag_name, mode, jobs, started=started, ended=ended, vcpus=vcpus, way=IN_PROCESS)


@dataclass
class CliSetup:
    """How the ``airflow dags test`` command runs: the command, its environment (the project's
    Airflow home, as ``make`` sets it up, with the endpoint's connection) and its metadata database."""

    command: list[str]
    env: dict[str, str]
    database: Path
    logs: Path


def cli_setup(user_env: dict[str, str], airflow_home: Path, endpoint: Any, work: Path) -> CliSetup:
    """The command's set-up: the user's environment as ``make`` and ``local-env.sh`` extend it, and
    what the run needs (the endpoint's connection, the results folder, AWS settings for no real AWS).

    :param user_env: the environment this script started with, before it isolated its own Airflow
    :param airflow_home: the project's Airflow home (``make airflow-db`` creates it)
    :param endpoint: the running local endpoint
    :param work: the script's scratch folder (the commands' output goes to ``work/cli-logs``)
    """
    if not (airflow_home / "airflow.cfg").is_file():
        raise RuntimeError(
            f"--airflow-home {airflow_home} has no airflow.cfg: run `make airflow-db` first (make bench does)"
        )
    executable = Path(sys.executable).parent / "airflow"
    command = [str(executable)] if executable.is_file() else [sys.executable, "-m", "airflow"]
    env = {
        key: value
        for key, value in user_env.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(endpoint.connection()),
            "AIRFLOW_VAR_BATCH_FANOUT_RESULTS_URI": os.environ["AIRFLOW_VAR_BATCH_FANOUT_RESULTS_URI"],
            "AIRFLOW_VAR_BATCH_FANOUT_IMAGE_REGISTRY": "local",
            "AIRFLOW_VAR_BATCH_FANOUT_IMAGE_TAG": "latest",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    completed = subprocess.run(
        [*command, "config", "get-value", "database", "sql_alchemy_conn"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    uri = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
    if completed.returncode != 0 or not uri.startswith("sqlite:///"):
        raise RuntimeError(
            f"the Airflow home {airflow_home} must use a SQLite database (sql_alchemy_conn {uri!r}, "
            f"exit {completed.returncode}): {completed.stderr[-1000:]}"
        )
    database = Path(uri.removeprefix("sqlite:///"))
    if not database.is_file():
        raise RuntimeError(f"{database} does not exist: run `make airflow-db` first")
    logs = work / "cli-logs"
    logs.mkdir(exist_ok=True)
    return CliSetup(command, env, database, logs)


def sqlite_xcom_reader(database: Path, dag_id: str, not_before: float) -> XComReader:
    """The XCom return values of the latest run of ``dag_id`` in the command's database, which must
    have started after ``not_before`` (epoch seconds): the run the command just made."""
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT id, run_id, start_date FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
    if row is None:
        raise RuntimeError(f"{database} holds no run of {dag_id}")
    run_key, run_id, start_date = row
    started = datetime.fromisoformat(start_date).replace(tzinfo=timezone.utc).timestamp()
    if started < not_before:
        raise RuntimeError(f"the latest run of {dag_id} in {database} ({run_id}) is older than the command")

    def read(task_id: str) -> Any:
        with sqlite3.connect(database) as connection:
            value = connection.execute(
                "SELECT value FROM xcom WHERE dag_run_id = ? AND task_id = ? AND map_index = -1 "
                "AND key = 'return_value'",
                (run_key, task_id),
            ).fetchone()
        return None if value is None or value[0] is None else json.loads(value[0])

    return read


# Airflow's own INFO log lines that mark where the command is, in the order they come, and the phase
# each one ends (cli_phases). The first is logged once Airflow is imported and the command starts.
PHASE_MARKS = (
    ("DAG bundles loaded", "start-up: interpreter, Airflow import"),
    ("creating dag run", "DAG folder parse + serialize (twice)"),
    ("Task started", "first task: execution API built"),
    ("DagRun Finished", "first task started to run end"),
)
EXIT_PHASE = "run end to process exit"
LOG_TIME = len("2026-01-01T00:00:00.000000Z")


def cli_phases(log_text: str, started: float, ended: float) -> dict[str, float]:
    """Where the command's wall time went, from the timestamps of Airflow's log lines in its output
    (``PHASE_MARKS``); empty if a mark is missing (another logging level, say)."""
    marks: list[float] = []
    lines = iter(log_text.splitlines())
    for text, _ in PHASE_MARKS:
        for line in lines:
            if text in line:
                try:
                    stamp = datetime.strptime(line[:LOG_TIME], "%Y-%m-%dT%H:%M:%S.%fZ")
                except ValueError:
                    continue
                marks.append(stamp.replace(tzinfo=timezone.utc).timestamp())
                break
        else:
            return {}
    bounds = [started, *marks, ended]
    names = [name for _, name in PHASE_MARKS] + [EXIT_PHASE]
    return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}


def run_cli_once(
    dag_name: str, dag_id: str, mode: str, *, conf: dict[str, Any], batch: Any, vcpus: int, setup: CliSetup
) -> RunFigures:
    """``airflow dags test <dag_id> -c <conf>`` in a fresh process, timed from its start to its exit."""
    log = setup.logs / f"{dag_id}-{time.time_ns()}.log"
    with log.open("w") as output:
        started = time.time()
        completed = subprocess.run(
            [*setup.command, "dags", "test", dag_id, "-c", json.dumps(conf)],
            env=setup.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT_SECONDS,
            cwd=REPO_ROOT,
        )
        ended = time.time()
    if completed.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"airflow dags test {dag_id} exited {completed.returncode}:\n{tail}")
    collect = collect_jobs if dag_name == PIPELINE else collect_graph_jobs
    jobs = collect(batch, sqlite_xcom_reader(setup.database, dag_id, started), mode)
    figures = figures_of(dag_name, mode, jobs, started=started, ended=ended, vcpus=vcpus, way=CLI)
    figures.phases = cli_phases(log.read_text(errors="replace"), started, ended)
    return figures


def milliseconds(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"


def print_table(dag_name: str, results: dict[tuple[str, str], list[RunFigures]], poll_seconds: float) -> None:
    """The figures of one DAG, a column per (mode, way) that has runs."""
    columns = [key for key in results if results[key]]
    stages = list(results[columns[0]][0].stage_run_seconds)

    def med(column: tuple[str, str], name: str) -> float:
        return float(statistics.median(getattr(run, name) for run in results[column]))

    rows: list[tuple[str, Any]] = [
        ("wall time (CLI: process start to exit)", lambda c: f"{med(c, 'wall'):.1f} s"),
        ("sum of job run times", lambda c: f"{med(c, 'job_sum'):.1f} s"),
        ("critical path of job run times", lambda c: f"{med(c, 'critical_path'):.1f} s"),
        ("capacity bound max(path, sum/vCPUs)", lambda c: f"{med(c, 'capacity_bound'):.1f} s"),
        ("Airflow overhead: wall - critical path", lambda c: f"{med(c, 'overhead'):.1f} s"),
        (
            "  range over the runs",
            lambda c: "-".join(f"{f(run.overhead for run in results[c]):.1f}" for f in (min, max)) + " s",
        ),
        ("  as a share of wall", lambda c: f"{med(c, 'overhead') / med(c, 'wall'):.0%}"),
        ("  in poll intervals", lambda c: f"{med(c, 'overhead') / poll_seconds:.1f}"),
        ("wall - capacity bound", lambda c: f"{med(c, 'overhead_over_bound'):.1f} s"),
        ("  before the first job starts", lambda c: f"{med(c, 'before_first_job'):.1f} s"),
        ("  Batch idle between first start and last end", lambda c: f"{med(c, 'batch_idle'):.1f} s"),
        ("  after the last job ends", lambda c: f"{med(c, 'after_last_job'):.1f} s"),
        (
            "dependency gap, median / max",
            lambda c: milliseconds([gap for run in results[c] for gap in run.gaps]) + " ms",
        ),
        (
            "  net of capacity, median / max",
            lambda c: milliseconds([gap for run in results[c] for gap in run.net_gaps]) + " ms",
        ),
        (
            "job run time: " + "/".join(stage.replace("shortest_path", "path") for stage in stages),
            lambda c: (
                "/".join(
                    f"{statistics.median(run.stage_run_seconds[stage] for run in results[c]):.1f}"
                    for stage in stages
                )
                + " s"
            ),
        ),
        *[
            (
                f"  CLI: {name}",
                lambda c, name=name: (
                    f"{statistics.median(run.phases[name] for run in results[c]):.1f} s"
                    if all(run.phases for run in results[c])
                    else "-"
                ),
            )
            for name in [name for _, name in PHASE_MARKS] + [EXIT_PHASE]
        ],
        ("jobs (array children counted)", lambda c: str(results[c][0].jobs)),
        (
            "load average (1 min) during the runs",
            lambda c: "-".join(
                f"{value:.1f}"
                for value in (min(run.load for run in results[c]), max(run.load for run in results[c]))
            ),
        ),
    ]
    runs = ", ".join(f"{mode} {WAY_LABELS[way]}: {len(results[(mode, way)])}" for mode, way in columns)
    print(f"\n{dag_name}, medians over the runs ({runs}); gaps pooled over the runs")
    labels = {column: f"{column[0]} {WAY_LABELS[column[1]]}" for column in columns}
    width = 2 + max(len(text) for _, value in rows for c in columns for text in (labels[c], value(c)))
    print(f"{'what':<48}" + "".join(f"{labels[c]:>{width}}" for c in columns))
    for label, value in rows:
        print(f"{label:<48}" + "".join(f"{value(c):>{width}}" for c in columns))
    for mode in MODES:
        if results.get((mode, CLI)) and results.get((mode, IN_PROCESS)):
            extra = med((mode, CLI), "wall") - med((mode, IN_PROCESS), "wall")
            print(
                f"{mode}: the command's start-up, DAG folder parse and serialization "
                f"(CLI wall - dag.test() wall): {extra:.1f} s"
            )
    for way in WAYS:
        if results.get((STAGE_BY_STAGE, way)) and results.get((ALL_AT_ONCE, way)):
            ratio = med((STAGE_BY_STAGE, way), "wall") / med((ALL_AT_ONCE, way), "wall")
            print(f"wall time stage_by_stage / all_at_once ({WAY_LABELS[way]}): {ratio:.2f}")


def print_targets(results: dict[tuple[str, str, str], list[RunFigures]], poll_seconds: float) -> None:
    """One line per DAG and mode, as ``make bench`` collects them: the median of wall - critical
    path of the ``airflow dags test`` command against the target (3 s plus one poll interval); the
    in-process figures beside them, on lines that are not targets."""
    print()
    now = os.getloadavg()
    for way in (IN_PROCESS, CLI):
        for (dag_name, mode, run_way), runs in results.items():
            if not runs or run_way != way:
                continue
            overhead = statistics.median(run.overhead for run in runs)
            loads = sorted(run.load for run in runs)
            what = "TARGET airflow dags test" if way == CLI else "in-process dag.test() of"
            print(
                f"{what} {dag_name} {mode}: wall - critical path = {overhead:.1f} s "
                f"(target <= {TARGET_SECONDS:g} s + poll {poll_seconds:g} s) "
                f"(load {now[0]:.2f}/{now[1]:.2f}; {len(runs)} runs at load {loads[0]:.1f}-{loads[-1]:.1f})"
            )


def benchmark_pipeline(args: argparse.Namespace, work: Path, user_env: dict[str, str]) -> bool:
    from batch_fanout.local.testing import running_endpoint
    from batch_fanout_project import pipeline

    confs = {
        PIPELINE: {"tests": args.tests, "stress_duration": args.stress_duration, "grid": args.grid},
        GRAPH_DAG: {"work_seconds": args.work_seconds},
    }
    for dag_name in args.dags:
        print(f"\n{dag_name} parameters: the DAG's defaults except {json.dumps(confs[dag_name])}")
    print(f"poll interval (batch_fanout_project.pipeline.POLL_SECONDS): {pipeline.POLL_SECONDS} s")
    results_dir = work / "results"
    results_dir.mkdir()
    os.environ["AIRFLOW_VAR_BATCH_FANOUT_RESULTS_URI"] = results_dir.as_uri()
    os.environ["AIRFLOW_VAR_BATCH_FANOUT_IMAGE_REGISTRY"] = "local"
    os.environ["AIRFLOW_VAR_BATCH_FANOUT_IMAGE_TAG"] = "latest"

    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    combinations = [
        (dag_name, mode, way) for dag_name in args.dags for mode in args.modes for way in args.ways
    ]
    results: dict[tuple[str, str, str], list[RunFigures]] = {combination: [] for combination in combinations}
    dag_ids = {PIPELINE: DAG_IDS, GRAPH_DAG: GRAPH_DAG_IDS}
    ok = True
    with running_endpoint(
        work / "local-batch", containers_dir=REPO_ROOT / "include" / "containers"
    ) as endpoint:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(endpoint.connection())
        batch = endpoint.client("batch")
        environment = batch.describe_compute_environments(computeEnvironments=[COMPUTE_ENVIRONMENT])
        vcpus = int(environment["computeEnvironments"][0]["computeResources"]["maxvCpus"])
        print(f"local endpoint: {endpoint.url}, compute environment {COMPUTE_ENVIRONMENT} of {vcpus} vCPUs")
        dags = load_dags() if IN_PROCESS in args.ways else {}
        setup = cli_setup(user_env, args.airflow_home, endpoint, work) if CLI in args.ways else None
        if setup is not None:
            print(f"airflow dags test: {' '.join(setup.command)} with AIRFLOW_HOME={args.airflow_home}")

        def run(dag_name: str, mode: str, way: str) -> RunFigures:
            if way == CLI:
                assert setup is not None
                return run_cli_once(
                    dag_name,
                    dag_ids[dag_name][mode],
                    mode,
                    conf=confs[dag_name],
                    batch=batch,
                    vcpus=vcpus,
                    setup=setup,
                )
            return run_once(
                dag_name, dags[(dag_name, mode)], mode, conf=confs[dag_name], batch=batch, vcpus=vcpus
            )

        for warmup in range(args.warmup):
            # The first run of each DAG registers the job definitions and warms caches (the numba
            # kernels of the shortest-path jobs, the files the command reads); it is not counted.
            for dag_name in args.dags:
                mode, way = args.modes[0], args.ways[0]
                try:
                    figures = run(dag_name, mode, way)
                    print(
                        f"warm-up {warmup + 1} {dag_name} {mode} {WAY_LABELS[way]}: "
                        f"wall {figures.wall:.1f} s (not counted)",
                        flush=True,
                    )
                except Exception as error:
                    ok = False
                    print(f"warm-up {warmup + 1} {dag_name} {mode}: FAILED: {error}", file=sys.stderr)
        # DAGs, modes and ways interleaved, in turn first, so that a warming cache or a busy moment
        # of the shared machine favours none of them.
        for repeat in range(args.repeat):
            for dag_name, mode, way in combinations if repeat % 2 == 0 else reversed(combinations):
                try:
                    figures = run(dag_name, mode, way)
                except Exception as error:  # a failed run is reported, then the script exits non-zero
                    ok = False
                    print(f"run {repeat + 1} {dag_name} {mode} {way}: FAILED: {error}", file=sys.stderr)
                    continue
                results[(dag_name, mode, way)].append(figures)
                print(
                    f"run {repeat + 1} {dag_name:<20} {mode:<15} {WAY_LABELS[way]:<10} wall {figures.wall:6.1f} s, "
                    f"job sum {figures.job_sum:6.1f} s, critical path {figures.critical_path:6.1f} s, "
                    f"overhead {figures.overhead:6.1f} s, gap median {statistics.median(figures.gaps) * 1000:.0f} ms, "
                    f"load {figures.load:.1f}",
                    flush=True,
                )
    for dag_name in args.dags:
        by_column = {
            (mode, way): results[(dag_name, mode, way)]
            for mode in args.modes
            for way in args.ways
            if results[(dag_name, mode, way)]
        }
        if by_column:
            print_table(dag_name, by_column, pipeline.POLL_SECONDS)
    print_targets(results, pipeline.POLL_SECONDS)
    return ok


def stress_ng_version() -> str:
    executable = shutil.which("stress-ng")
    if executable is None:
        return "not installed"
    completed = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
    return (completed.stdout or completed.stderr).strip()


def mode_list(value: str) -> list[str]:
    modes = [mode.strip() for mode in value.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(f"--modes takes a comma list of {', '.join(MODES)}; got {value!r}")
    return modes


def way_list(value: str) -> list[str]:
    ways = [way.strip() for way in value.split(",") if way.strip()]
    unknown = [way for way in ways if way not in WAYS]
    if not ways or unknown:
        raise argparse.ArgumentTypeError(f"--ways takes a comma list of {', '.join(WAYS)}; got {value!r}")
    return ways


def dag_list(value: str) -> list[str]:
    dags = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in dags if name not in BENCHMARKED_DAGS]
    if not dags or unknown:
        raise argparse.ArgumentTypeError(
            f"--dags takes a comma list of {', '.join(BENCHMARKED_DAGS)}; got {value!r}"
        )
    return dags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--tests", type=int, default=4, help="stress-ng tests and shortest-path shards (>= 2)"
    )
    parser.add_argument("--stress-duration", type=int, default=2, help="seconds per stress-ng test")
    parser.add_argument("--grid", default="64x64", help="generated road-like grid, ROWSxCOLUMNS")
    parser.add_argument(
        "--work-seconds", type=int, default=1, help="seconds of work per job_dependency_graph step"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each DAG and mode (0: no DAG run)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs before the measured ones")
    parser.add_argument("--parse-runs", type=int, default=3, help="runs per DAG file and way (0: no parse)")
    parser.add_argument("--modes", type=mode_list, default=list(MODES), help="comma list of submission modes")
    parser.add_argument(
        "--dags", type=dag_list, default=list(BENCHMARKED_DAGS), help="comma list of the DAGs to run"
    )
    parser.add_argument(
        "--ways",
        type=way_list,
        default=list(WAYS),
        help="comma list: cli (the airflow dags test command), in_process (dag.test() in this process)",
    )
    parser.add_argument(
        "--airflow-home",
        type=Path,
        default=REPO_ROOT / ".airflow",
        help="the Airflow home the command runs with (default: the project's, as make airflow-db sets it up)",
    )
    args = parser.parse_args(argv)
    if args.tests < 2:
        parser.error(f"--tests must be at least 2 (AWS Batch rejects an array of size 1), got {args.tests}")
    if min(args.repeat, args.parse_runs, args.warmup, args.work_seconds) < 0:
        parser.error("--repeat, --warmup, --parse-runs and --work-seconds must be >= 0")

    work = Path(tempfile.mkdtemp(prefix="pipeline-benchmark-"))
    # The command runs in the environment this script was started in, not the isolated one below.
    user_env = dict(os.environ)
    try:
        prepare_environment(work)
        migrate_database()
        import airflow

        print(
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"Airflow {airflow.__version__}, {stress_ng_version()}"
        )
        print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
        ok = True
        if args.parse_runs:
            ok = benchmark_parsing(args.parse_runs) and ok
        if args.repeat:
            ok = benchmark_pipeline(args, work, user_env) and ok
        print(f"\nload average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
