"""DAG integrity, as the Astro project template checks it, and more: every DAG file imports cleanly,
carries the metadata its users rely on, and parses quickly with no network call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(path for path in DAGS_DIR.glob("*.py") if not path.name.startswith("_"))
EXPECTED_DAG_IDS = {
    "batch_fanout",
    "batch_fanout_stage_by_stage",
    "stress_ng_leader_follower",
    "shortest_path_all_pairs",
    "job_dependency_graph",
    "job_dependency_graph_stage_by_stage",
}


@pytest.fixture(scope="module")
def dag_bag(airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports_without_errors(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}
    assert set(dag_bag.dag_ids) == EXPECTED_DAG_IDS


def test_every_dag_has_tags_docs_owner_and_retries(dag_bag: Any) -> None:
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} has no doc_md worth reading"
        assert dag.max_active_runs is not None, f"{dag_id} leaves max_active_runs unset"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_every_dag_takes_what_the_project_dags_share(dag_bag: Any) -> None:
    from batch_fanout_project import pipeline

    for dag_id, dag in dag_bag.dags.items():
        assert dag.start_date == pipeline.START_DATE, dag_id
        assert dag.catchup is False, dag_id
        assert set(pipeline.TAGS) <= set(dag.tags), dag_id
        assert dag.default_args["owner"] == pipeline.OWNER, dag_id
        assert dag.dagrun_timeout is not None, f"{dag_id} leaves dagrun_timeout unset"


PARSE_WITH_NO_NETWORK = """
import socket, sys, time

class NoNetwork(socket.socket):
    def connect(self, *args, **kwargs):
        raise RuntimeError(f"network call while parsing a DAG file: connect{args}")

socket.socket = NoNetwork
socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(RuntimeError(f"network call: {a}"))
import importlib
import importlib.util
from airflow.utils.file import iter_airflow_imports

path = sys.argv[1]
# Airflow puts the DAG folder on sys.path: the DAG files import the project's package from it.
sys.path.append(sys.argv[2])
# As Airflow's DAG processor does (parsing_pre_import_modules): the airflow.* modules a file names are
# imported once, before each file is parsed in a fresh process.
for name in iter_airflow_imports(path):
    importlib.import_module(name)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[path.name for path in DAG_FILES])
def test_dag_file_parses_quickly_with_no_network_call(dag_file: Path, airflow_db: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PARSE_WITH_NO_NETWORK, str(dag_file), str(DAGS_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seconds = float(result.stdout.strip().splitlines()[-1])
    # A generous bound that catches heavy top-level code; speed is measured in benchmarks/.
    assert seconds < 1.0, f"{dag_file.name} took {seconds:.2f} s to parse"


def test_every_trigger_form_parameter_is_described(dag_bag: Any) -> None:
    for dag_id, dag in dag_bag.dags.items():
        for name, param in dag.params.items():
            assert param.description and len(param.description) > 10, (
                f"{dag_id}: param {name} has no description"
            )


def test_no_dag_shows_a_branch_or_a_task_that_is_always_skipped(dag_bag: Any) -> None:
    for dag_id, dag in dag_bag.dags.items():
        for task in dag.tasks:
            assert "branch" not in type(task).__name__.lower(), f"{dag_id}.{task.task_id} is a branch"


def test_the_project_package_is_not_parsed_as_dags(dag_bag: Any) -> None:
    assert not [path for path in dag_bag.dagbag_stats if "batch_fanout_project" in path.file]


def test_the_no_network_guard_itself_catches_a_connection(tmp_path: Path, airflow_db: Path) -> None:
    offender = tmp_path / "dag_that_calls_out.py"
    offender.write_text("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    result = subprocess.run(
        [sys.executable, "-c", PARSE_WITH_NO_NETWORK, str(offender), str(DAGS_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "network call" in result.stderr
