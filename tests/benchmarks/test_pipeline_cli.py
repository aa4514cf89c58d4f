"""``benchmarks/pipeline.py``'s reading of an ``airflow dags test`` command: the phases of its wall time
from Airflow's log lines, and its run's job ids from its metadata database."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from .conftest import load_benchmark

pipeline = load_benchmark("pipeline")


def _epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


LOG = """\
2026-12-01T17:44:21.038000Z [warning  ] Could not import graphviz.
2026-12-01T17:44:21.182000Z [info     ] DAG bundles loaded: dags-folder [airflow.dag_processing.bundles.manager]
2026-12-01T17:44:22.515000Z [info     ] creating dag run               [airflow.serialization.definitions.dag]
2026-12-01T17:44:27.363000Z [info     ] Task started                   [airflow.api_fastapi.execution_api]
2026-12-01T17:44:28.328000Z [info     ] Task started                   [airflow.api_fastapi.execution_api]
2026-12-01T17:44:34.115000Z [info     ] DagRun Finished: dag_id=job_dependency_graph
"""


def test_cli_phases_split_the_wall_time_at_airflows_log_lines() -> None:
    started, ended = _epoch("2026-12-01T17:44:18.660000Z"), _epoch("2026-12-01T17:44:36.770000Z")
    phases = pipeline.cli_phases(LOG, started, ended)
    assert [round(seconds, 3) for seconds in phases.values()] == [2.522, 1.333, 4.848, 6.752, 2.655]
    assert list(phases)[-1] == pipeline.EXIT_PHASE
    assert sum(phases.values()) == pytest.approx(ended - started)


def test_cli_phases_are_empty_when_a_mark_is_missing() -> None:
    without_run_end = "\n".join(line for line in LOG.splitlines() if "DagRun Finished" not in line)
    assert pipeline.cli_phases(without_run_end, 0.0, 1e10) == {}


def _database(path: Path, start_date: str) -> Path:
    # The columns of Airflow's dag_run and xcom tables that the reader reads.
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE dag_run (id INTEGER, dag_id TEXT, run_id TEXT, start_date TEXT)")
        connection.execute(
            "CREATE TABLE xcom (dag_run_id INTEGER, task_id TEXT, map_index INTEGER, key TEXT, value JSON)"
        )
        connection.execute(
            "INSERT INTO dag_run VALUES (1, 'graph', 'manual__old', '2026-12-01 10:00:00.000000')"
        )
        connection.execute("INSERT INTO dag_run VALUES (2, 'graph', 'manual__new', ?)", (start_date,))
        rows = [
            (1, "submit_A", -1, "return_value", json.dumps("old-job")),
            (2, "submit_A", -1, "return_value", json.dumps("new-job")),
            (2, "submit_A", -1, "batch_job_links", json.dumps({"not": "this"})),
            (2, "watch_A", -1, "return_value", None),
        ]
        connection.executemany("INSERT INTO xcom VALUES (?, ?, ?, ?, ?)", rows)
    return path


def test_the_xcom_reader_reads_the_latest_run_of_the_dag(tmp_path: Path) -> None:
    database = _database(tmp_path / "airflow.db", "2026-12-01 17:44:21.181817")
    read = pipeline.sqlite_xcom_reader(database, "graph", _epoch("2026-12-01T17:44:18.000000Z"))
    assert read("submit_A") == "new-job"
    assert read("watch_A") is None
    assert read("submit_B") is None


def test_the_xcom_reader_refuses_a_run_older_than_the_command(tmp_path: Path) -> None:
    database = _database(tmp_path / "airflow.db", "2026-12-01 17:44:21.181817")
    with pytest.raises(RuntimeError, match=r"manual__new.*older than the command"):
        pipeline.sqlite_xcom_reader(database, "graph", _epoch("2026-12-01T17:45:00.000000Z"))
    with pytest.raises(RuntimeError, match="holds no run of other"):
        pipeline.sqlite_xcom_reader(database, "other", 0.0)
