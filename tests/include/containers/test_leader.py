"""The leader job, run as AWS Batch runs it."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from batch_fanout_job.errors import EXIT_BAD_INPUT

SMALL_GRAPH = "p sp 5 6\na 1 2 4\na 1 2 2\na 2 3 1\na 3 4 7\na 4 5 1\na 5 1 3\n"


def read_manifest(run_folder: Path) -> dict[str, Any]:
    return json.loads((run_folder / "manifest.json").read_text())


def test_stress_plan_has_exactly_the_tests_asked_for(run_job, run_store, leader_command, batch_env) -> None:
    uri, prefix, folder = run_store
    args = leader_command(
        workloads="stress", tests="12", stress_duration="2", stress_cpus="1", exclude_methods="ackermann"
    )
    result = run_job("leader", args, batch_env(uri, prefix))
    assert result.returncode == 0, result.stderr
    lines = (folder / "stress-tests.txt").read_text().splitlines()
    manifest = read_manifest(folder)
    assert len(lines) == 12 and manifest["tests"] == lines
    assert manifest["array_sizes"] == {"stress": 12, "shortest_path": 0}
    assert lines[0] == f"--cpu 1 -t 2s --cpu-method {manifest['methods'][0]} --metrics-brief"
    assert "ackermann" not in manifest["methods"] and len(set(manifest["methods"])) == 12
    versions = manifest["tool_versions"]
    assert versions["stress-ng"] and versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["numpy"] and versions["scipy"] and manifest["created"]
    assert (
        "stress tests: 12 x 2s" in result.stdout
        and "array sizes: stress 12, shortest_path 0" in result.stdout
    )


def test_method_filter_accepts_names_and_globs(run_job, run_store, leader_command, batch_env) -> None:
    uri, prefix, folder = run_store
    args = leader_command(workloads="stress", tests="all", methods="fft,int*", exclude_methods="int128*")
    assert run_job("leader", args, batch_env(uri, prefix)).returncode == 0
    methods = read_manifest(folder)["methods"]
    assert "fft" in methods and "int64" in methods and not any(m.startswith("int128") for m in methods)
    assert all(m == "fft" or m.startswith("int") for m in methods)


def test_more_tests_than_matching_methods_fails_and_writes_nothing(
    run_job, run_store, leader_command, batch_env
) -> None:
    uri, prefix, folder = run_store
    result = run_job(
        "leader", leader_command(workloads="stress", tests="5", methods="fft,pi"), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert "--tests 5: only 2 CPU methods match the filter" in result.stderr
    assert not folder.exists()


def test_unknown_method_in_the_filter_is_named(run_job, run_store, leader_command, batch_env) -> None:
    uri, prefix, _ = run_store
    result = run_job(
        "leader", leader_command(workloads="stress", methods="fft,nosuch"), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT and "'nosuch' matches no CPU method" in result.stderr


def test_missing_stress_ng_is_a_clear_error(run_job, run_store, leader_command, batch_env, tmp_path) -> None:
    uri, prefix, folder = run_store
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = run_job(
        "leader", leader_command(workloads="stress"), batch_env(uri, prefix, path=str(empty_bin))
    )
    assert result.returncode == 1 and "stress-ng not found on PATH" in result.stderr
    assert not (folder / "manifest.json").exists()


def test_missing_results_uri_is_a_clear_error(run_job, leader_command, batch_env, tmp_path) -> None:
    environ = batch_env("", "run")
    result = run_job("leader", leader_command(workloads="stress"), environ)
    assert result.returncode == 1 and "RESULTS_URI is not set" in result.stderr
    missing = batch_env((tmp_path / "absent").as_uri(), "run")
    result = run_job("leader", leader_command(workloads="stress"), missing)
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_graph_is_merged_sharded_and_summarized(
    run_job, run_store, leader_command, batch_env, tmp_path
) -> None:
    uri, prefix, folder = run_store
    graph_file = tmp_path / "small.gr.gz"
    graph_file.write_bytes(gzip.compress(SMALL_GRAPH.encode()))
    args = leader_command(workloads="shortest_path", graph=graph_file.as_uri(), shards="2")
    result = run_job("leader", args, batch_env(uri, prefix))
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(folder)
    assert manifest["graph"]["nodes"] == 5 and manifest["graph"]["arcs"] == 5
    assert (
        manifest["graph"]["merged_duplicate_arcs"] == 1 and manifest["graph"]["source"] == graph_file.as_uri()
    )
    assert manifest["shards"] == [{"first": 1, "last": 3, "count": 3}, {"first": 4, "last": 5, "count": 2}]
    assert manifest["array_sizes"] == {"stress": 0, "shortest_path": 2}
    assert (folder / "graph" / "graph.npz").stat().st_size > 0 and not (folder / "stress-tests.txt").exists()
    assert "5 nodes, 5 arcs (1 duplicate arcs merged" in result.stdout


def test_generated_graph_with_an_origin_count(run_job, run_store, leader_command, batch_env) -> None:
    uri, prefix, folder = run_store
    args = leader_command(
        workloads="shortest_path",
        graph="generate",
        grid="20x30",
        edge_probability="0.8",
        seed="3",
        shards="4",
        origins="10",
    )
    assert run_job("leader", args, batch_env(uri, prefix)).returncode == 0
    manifest = read_manifest(folder)
    assert manifest["origins"] == {"mode": "count", "count": 10}
    assert sum(shard["count"] for shard in manifest["shards"]) == 10 and len(manifest["shards"]) == 4
    assert manifest["graph"]["generator"] == {"rows": 20, "columns": 30, "edge_probability": 0.8, "seed": 3}


@pytest.mark.parametrize(
    ("graph", "options", "message"),
    [
        ("p sp 3 2\na 1 2 4\n", {}, "declares 2 arcs but the file has 1"),
        ("p sp 3 1\na 1 2 -1\n", {}, "line 2: cost -1 is negative"),
        ("p sp 3 1\na 1 2 1.5\n", {}, "line 2: cost '1.5' is not an integer"),
        ("p sp 3 1\na 1 4 1\n", {}, "line 2: node id 4 is out of range 1..3"),
        ("", {}, "no problem line"),
        ("p sp 0 0\n", {}, "empty graph"),
        (SMALL_GRAPH, {"origins": "2,9"}, "origin 9 is not a node of the graph"),
        (SMALL_GRAPH, {"shards": "6"}, "--shards 6: only 5 origins"),
        (None, {}, "does not exist"),
    ],
)
def test_bad_graph_input_fails_naming_it_and_writes_nothing(  # noqa: PLR0917
    run_job, run_store, leader_command, batch_env, tmp_path, graph, options, message
) -> None:
    uri, prefix, folder = run_store
    graph_file = tmp_path / "bad.gr"
    if graph is not None:
        graph_file.write_text(graph)
    args = leader_command(workloads="shortest_path", graph=str(graph_file), **options)
    result = run_job("leader", args, batch_env(uri, prefix))
    assert result.returncode == EXIT_BAD_INPUT
    assert message in result.stderr
    assert not folder.exists()


def test_rerun_with_bad_input_withdraws_the_earlier_manifest(
    run_job, run_store, leader_command, batch_env, tmp_path
) -> None:
    uri, prefix, folder = run_store
    graph_file = tmp_path / "g.gr"
    graph_file.write_text(SMALL_GRAPH)
    assert (
        run_job(
            "leader", leader_command(workloads="shortest_path", graph=str(graph_file)), batch_env(uri, prefix)
        ).returncode
        == 0
    )
    assert (folder / "manifest.json").exists()
    graph_file.write_text(SMALL_GRAPH.replace("a 4 5 1", "a 4 5 x"))
    result = run_job(
        "leader", leader_command(workloads="shortest_path", graph=str(graph_file)), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT and "line 6: cost 'x' is not an integer" in result.stderr
    assert not (folder / "manifest.json").exists()


def test_unknown_workload_is_refused(run_job, run_store, leader_command, batch_env) -> None:
    uri, prefix, _ = run_store
    result = run_job("leader", leader_command(workloads="mining"), batch_env(uri, prefix))
    assert result.returncode == EXIT_BAD_INPUT and "--workloads 'mining'" in result.stderr
