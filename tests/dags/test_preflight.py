"""The preflight check of a run's parameters: real files, a real HTTP server, S3 on a moto server reached
through an Airflow AWS connection, and the worker's real stress-ng."""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest

from batch_fanout_job.limits import (
    GRAPH_BYTES_PER_TEXT_BYTE,
    LEADER_BASELINE_MIB,
    LEADER_MEMORY_MIB,
    grid_memory_mib,
    largest_graph_text_bytes,
)
from batch_fanout_project.preflight import PreflightError, check_run_params

CONN = "preflight_aws"
GRAPH = "c a small graph\np sp 5 6\na 1 2 4\na 1 2 2\na 2 3 1\na 3 4 7\na 4 5 1\na 5 1 3\n"
SHORTEST_PATH_DEFAULTS = {
    "graph": "generate",
    "grid": "64x64",
    "seed": 1,
    "shards": 4,
    "origins": "all",
    "paths_for": "none",
    "fail_once_indices": "none",
}
STRESS_DEFAULTS = {
    "tests": 4,
    "stress_duration": 2,
    "stressors": 1,
    "methods": "all",
    "exclude_methods": "none",
    "fail_once_indices": "none",
}


def refused(params: dict[str, Any]) -> PreflightError:
    with pytest.raises(PreflightError) as caught:
        check_run_params(params, aws_conn_id=CONN)
    return caught.value


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.gr"
    path.write_text(GRAPH)
    return path


def test_the_dags_default_parameters_pass() -> None:
    check_run_params(SHORTEST_PATH_DEFAULTS, aws_conn_id=CONN)
    check_run_params(STRESS_DEFAULTS, aws_conn_id=CONN)
    check_run_params({"work_seconds": 1}, aws_conn_id=CONN)


def test_a_local_graph_passes_and_its_node_count_bounds_origins_and_shards(graph_file: Path) -> None:
    for graph in (graph_file.as_uri(), str(graph_file)):
        check_run_params({**SHORTEST_PATH_DEFAULTS, "graph": graph, "shards": 5}, aws_conn_id=CONN)
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": graph_file.as_uri(), "shards": 6})
    assert error.parameters == ["shards"]
    assert "shards: 6 shards but only 5 origins (origins all: the graph has 5 nodes)" in str(error)
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": graph_file.as_uri(), "origins": "2,9"})
    assert error.parameters == ["origins"]
    assert "origin 9 is not a node of the graph (the graph has at most 5 nodes)" in str(error)


def test_a_graph_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = (tmp_path / "absent.gr").as_uri()
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": missing})
    assert error.parameters == ["graph"]
    assert f"graph: {missing} does not exist" in str(error)
    assert "nothing was submitted" in str(error)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1 2 3\n", "line 1: expected the problem line 'p sp NODES ARCS', got 'a 1 2 3'"),
        ("c only comments\n", "has no problem line 'p sp NODES ARCS'"),
        ("p sp 0 0\n", "line 1: empty graph"),
        ("p sp 4294967296 1\na 1 2 1\n", "4294967296 nodes is more than 2147483647"),
    ],
)
def test_a_file_that_is_not_a_dimacs_graph_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.gr"
    path.write_text(text)
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": path.as_uri()})
    assert error.parameters == ["graph"] and message in str(error)


def test_a_gzip_graph_is_read_through_and_its_trailer_gives_the_text_size(tmp_path: Path) -> None:
    path = tmp_path / "small.gr.gz"
    path.write_bytes(gzip.compress(GRAPH.encode()))
    check_run_params({**SHORTEST_PATH_DEFAULTS, "graph": path.as_uri(), "shards": 5}, aws_conn_id=CONN)
    assert "6 shards but only 5 origins" in str(
        refused({**SHORTEST_PATH_DEFAULTS, "graph": path.as_uri(), "shards": 6})
    )
    # A file of zeros compresses to almost nothing: its trailer tells the size the leader would read.
    big = largest_graph_text_bytes() + 1
    bomb = tmp_path / "bomb.gr.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as handle:
        handle.write(b"p sp 2 1\n")
        handle.write(b" " * (big - 9))
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": bomb.as_uri(), "shards": 2})
    assert error.parameters == ["graph"]
    assert f"reading {big} bytes of DIMACS text needs about" in str(error)
    assert f"({LEADER_BASELINE_MIB} MiB + {GRAPH_BYTES_PER_TEXT_BYTE} bytes a byte of text)" in str(error)
    assert f"more than the leader's {LEADER_MEMORY_MIB} MiB" in str(error)


def test_a_grid_beyond_the_leaders_memory_is_refused_with_the_estimate() -> None:
    error = refused({**SHORTEST_PATH_DEFAULTS, "grid": "100000x100000"})
    assert error.parameters == ["grid"]
    assert (
        f"grid: 100000x100000: generating 10000000000 nodes needs about {grid_memory_mib(100_000, 100_000)} MiB"
        in str(error)
    )
    assert f"more than the leader's {LEADER_MEMORY_MIB} MiB: give a grid of at most" in str(error)
    assert refused({**SHORTEST_PATH_DEFAULTS, "grid": "8by8"}).parameters == ["grid"]
    error = refused({**SHORTEST_PATH_DEFAULTS, "grid": "4x4", "shards": 17})
    assert "17 shards but only 16 origins" in str(error)


def test_every_problem_is_named_at_once() -> None:
    error = refused(
        {
            **SHORTEST_PATH_DEFAULTS,
            "grid": "4x4",
            "origins": "20",
            "paths_for": "1:99",
            "fail_once_indices": "4",
        }
    )
    assert error.parameters == ["origins", "paths_for", "fail_once_indices"]
    assert "origins: 20 origins but the graph has at most 16 nodes" in str(error)
    assert "paths_for: 99 is not a node of the graph (at most 16 nodes)" in str(error)
    assert "fail_once_indices: index 4 is past the end of the array (size 4)" in str(error)


def test_paths_for_an_origin_not_in_the_list_is_refused() -> None:
    error = refused({**SHORTEST_PATH_DEFAULTS, "origins": "1,2,3,4", "paths_for": "5:6"})
    assert error.parameters == ["paths_for"]
    assert "origin 5 is not among the run's origins [1, 2, 3, 4]" in str(error)


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"tests": 0}, "tests"),
        ({"tests": 10_001}, "tests"),
        ({"tests": "four"}, "tests"),
        ({"tests": True}, "tests"),
        ({"stress_duration": 0}, "stress_duration"),
        ({"stressors": -1}, "stressors"),
    ],
)
def test_integers_out_of_range_are_named(change: dict[str, Any], parameter: str) -> None:
    assert refused({**STRESS_DEFAULTS, **change}).parameters == [parameter]


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="needs stress-ng on the worker")
def test_with_stress_ng_the_filters_are_checked_against_its_method_list() -> None:
    check_run_params({**STRESS_DEFAULTS, "tests": 2, "methods": "fft,pi"}, aws_conn_id=CONN)
    error = refused({**STRESS_DEFAULTS, "methods": "nosuch"})
    assert error.parameters == ["methods"]
    assert "'nosuch' matches no CPU method of this stress-ng" in str(error)
    error = refused({**STRESS_DEFAULTS, "tests": 3, "methods": "fft,pi"})
    assert error.parameters == ["tests"]
    assert "3 tests but only 2 of the" in str(
        error
    ) and "CPU methods of stress-ng match methods 'fft,pi'" in str(error)
    error = refused({**STRESS_DEFAULTS, "tests": 1, "methods": "fft", "exclude_methods": "fft"})
    assert error.parameters == ["exclude_methods"]
    assert "methods 'fft' minus 'fft' selects no CPU method" in str(error)


def test_without_stress_ng_plain_names_are_still_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a worker without stress-ng
    # Whether a name is a method only the leader's stress-ng can tell.
    check_run_params({**STRESS_DEFAULTS, "tests": 1, "methods": "nosuch"}, aws_conn_id=CONN)
    error = refused({**STRESS_DEFAULTS, "tests": 3, "methods": "fft,pi,ackermann", "exclude_methods": "pi"})
    assert error.parameters == ["tests"]
    assert "3 tests but only 2 of the methods listed match" in str(error)
    assert refused({**STRESS_DEFAULTS, "exclude_methods": "*"}).parameters == ["exclude_methods"]
    assert refused({**STRESS_DEFAULTS, "methods": "fft;rm"}).parameters == ["methods"]


# --- https ---------------------------------------------------------------------------------------------


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on the loopback interface serving a folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_an_http_graph_is_checked_by_head_and_a_ranged_read(http_folder: tuple[str, Path]) -> None:
    base, folder = http_folder
    (folder / "small.gr").write_text(GRAPH)
    check_run_params({**SHORTEST_PATH_DEFAULTS, "graph": f"{base}/small.gr", "shards": 5}, aws_conn_id=CONN)
    assert "6 shards but only 5 origins" in str(
        refused({**SHORTEST_PATH_DEFAULTS, "graph": f"{base}/small.gr", "shards": 6})
    )
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": f"{base}/absent.gr"})
    assert error.parameters == ["graph"] and f"{base}/absent.gr does not exist (HTTP 404)" in str(error)


def test_an_unsupported_scheme_is_named() -> None:
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": "ftp://example.org/g.gr"})
    assert error.parameters == ["graph"] and "scheme ftp:// is not supported" in str(error)


# --- s3, through the Airflow connection ------------------------------------------------------------------


@pytest.fixture
def s3_connection(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Airflow AWS connection the check is given, pointing at the moto server (no credentials of
    its own: boto3 takes the suite's environment, as a worker's instance role would)."""
    endpoint = __import__("os").environ["AWS_ENDPOINT_URL_S3"]
    extra = {"region_name": "us-east-1", "endpoint_url": endpoint}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "aws", "extra": extra}))
    return s3_bucket


def test_an_s3_graph_is_read_through_the_connection(s3_connection: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket="batch-fanout-results", Key="graphs/small.gr.gz", Body=gzip.compress(GRAPH.encode()))
    uri = f"{s3_connection}/graphs/small.gr.gz"
    check_run_params({**SHORTEST_PATH_DEFAULTS, "graph": uri, "shards": 5}, aws_conn_id=CONN)
    assert "6 shards but only 5 origins" in str(
        refused({**SHORTEST_PATH_DEFAULTS, "graph": uri, "shards": 6})
    )

    missing = f"{s3_connection}/graphs/absent.gr"
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": missing})
    assert error.parameters == ["graph"]
    assert f"graph: {missing} (connection '{CONN}') does not exist" in str(error)
    error = refused({**SHORTEST_PATH_DEFAULTS, "graph": "s3://no-such-bucket/g.gr"})
    assert "the bucket 'no-such-bucket' does not exist" in str(error)


# --- in a DAG run on the local endpoint ------------------------------------------------------------------


def _preflight_dag(dag_id: str, job_name: str, aws_conn_id: str) -> Any:
    """A preflight task ahead of a submission, as the project's DAGs put it: params in, nothing out."""
    import datetime

    from airflow.sdk import DAG, Param, get_current_context, task

    from batch_fanout.operators.batch import BatchFanoutOperator

    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        params={"graph": Param("generate", type="string"), "shards": Param(2, type="integer")},
    ) as dag:

        @task(retries=0)
        def preflight() -> None:
            check_run_params(get_current_context()["params"], aws_conn_id=aws_conn_id)

        submit = BatchFanoutOperator(
            task_id="submit",
            job_name=job_name,
            job_definition=job_name,
            job_queue="batch-fanout-queue",
            poll_interval=0.2,
            aws_conn_id=aws_conn_id,
            retries=0,
        )
        preflight() >> submit
    return dag


@pytest.mark.slow
def test_a_run_refused_by_the_preflight_submits_no_job(
    run_dag: Any, aws_connection: str, batch_client: Any, graph_file: Path, tmp_path: Path
) -> None:
    import uuid

    job_name = f"preflight-{uuid.uuid4().hex[:10]}"
    batch_client.register_job_definition(
        jobDefinitionName=job_name,
        type="container",
        containerProperties={
            "image": "local/batch-fanout/leader:latest",
            "command": ["python", "-c", "pass"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    )

    def jobs_of_the_run() -> list[str]:
        listed = batch_client.list_jobs(
            jobQueue="batch-fanout-queue", filters=[{"name": "JOB_NAME", "values": [job_name]}]
        )
        return [job["jobId"] for job in listed["jobSummaryList"]]

    dag = _preflight_dag(f"{job_name}-dag", job_name, aws_connection)
    missing = (tmp_path / "absent.gr").as_uri()
    refused_run = run_dag(dag, conf={"graph": missing})
    assert refused_run.get_task_instance("preflight").state == "failed"
    assert refused_run.get_task_instance("submit").state == "upstream_failed"
    assert jobs_of_the_run() == []

    # The same DAG with a graph that exists submits its job: the check, not the DAG, refused the run.
    accepted_run = run_dag(dag, conf={"graph": graph_file.as_uri(), "shards": 5})
    assert accepted_run.get_task_instance("submit").state == "success"
    assert len(jobs_of_the_run()) == 1
