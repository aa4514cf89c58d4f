"""The aggregator trusts nothing: every output must agree with this run's manifest, and a failing
aggregator leaves no report file of any kind behind, on file:// and on s3://."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

GRAPH = "p sp 5 6\na 1 2 4\na 1 2 2\na 2 3 1\na 3 4 7\na 4 5 1\na 5 1 3\n"
REPORT_FILES = {
    "report.json",
    "report.html",
    "stress.csv",
    "shortest_paths.csv",
    "shortest_paths_distribution.png",
    "top_central.png",
}


def plan_and_run(  # noqa: PLR0917
    run_job, start_job, leader_command, batch_env, uri: str, prefix: str, graph: Path
) -> None:
    """The leader on ``graph`` (2 shards), then both children."""
    leader = run_job(
        "leader",
        leader_command(workloads="shortest_path", graph=str(graph), shards="2"),
        batch_env(uri, prefix),
    )
    assert leader.returncode == 0, leader.stderr
    children = [
        start_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=index))
        for index in range(2)
    ]
    for child in children:
        result = child.wait()
        assert result.returncode == 0, result.stderr


def report_files(folder: Path) -> set[str]:
    report = folder / "report"
    return {path.name for path in report.rglob("*") if path.is_file()} if report.exists() else set()


@pytest.fixture
def reported_run(  # noqa: PLR0917
    run_job, start_job, run_store, leader_command, batch_env, tmp_path
):
    """A complete run with its report written, and the graph file it was planned from."""
    uri, prefix, folder = run_store
    graph = tmp_path / "g.gr"
    graph.write_text(GRAPH)
    plan_and_run(run_job, start_job, leader_command, batch_env, uri, prefix, graph)
    assert run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix)).returncode == 0
    assert report_files(folder) == REPORT_FILES
    return uri, prefix, folder, graph


def test_an_output_of_the_graph_before_a_leader_retry_is_refused(
    reported_run, run_job, leader_command, batch_env
) -> None:
    """The leader ran again on a changed graph (same nodes, same shards); the children did not."""
    uri, prefix, folder, graph = reported_run
    old = json.loads((folder / "shortest_paths" / "0.json").read_text())
    graph.write_text(GRAPH.replace("a 3 4 7", "a 3 4 5"))
    leader = run_job(
        "leader",
        leader_command(workloads="shortest_path", graph=str(graph), shards="2"),
        batch_env(uri, prefix),
    )
    assert leader.returncode == 0, leader.stderr
    new_sha = json.loads((folder / "manifest.json").read_text())["graph"]["sha256"]
    assert new_sha != old["graph_sha256"]

    result = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
    assert result.returncode == 1
    for index in (0, 1):
        assert (
            f"shortest_path index {index} (shortest_paths/{index}.json): was computed on graph sha256 "
            f"'{old['graph_sha256']}', not this run's {new_sha}"
        ) in result.stderr
    assert report_files(folder) == set()  # the earlier "complete" report is gone, every file of it


def test_a_failing_aggregator_withdraws_the_report_before_it_reads_anything(
    reported_run, run_job, batch_env
) -> None:
    uri, prefix, folder, _ = reported_run
    (folder / "manifest.json").unlink()
    result = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
    assert result.returncode == 1 and "manifest.json does not exist" in result.stderr
    assert report_files(folder) == set()
    assert not (folder / "report").exists()


def test_a_bad_option_withdraws_the_report_too(reported_run, run_job, batch_env) -> None:
    uri, prefix, folder, _ = reported_run
    result = run_job("aggregator", ["--tolerated-failures", "many"], batch_env(uri, prefix))
    assert result.returncode == 65 and "--tolerated-failures 'many'" in result.stderr
    assert report_files(folder) == set()


# (column, value given to origin 1, or a whole-field replacement) and the problem the aggregator names.
FORGED: list[tuple[Any, str]] = [
    (("distance_sum", -9223372036854775800), "origin 1: distance_sum -9223372036854775800 is not in 11..44"),
    (("eccentricity", 2**70), f"origin 1: eccentricity {2**70} is not in 0..28 ((nodes - 1) x max cost)"),
    (("reachable", 6), "origin 1: reachable 6 is not in 1..5 (the graph's nodes)"),
    (("reachable", True), "column reachable holds a value that is not an integer"),
    (("distance_sum", 26.0), "column distance_sum holds a value that is not an integer"),
    (("closeness", 1.5), "origin 1: closeness 1.5 is not in [0, 1]"),
    ({"origins": [1, 2]}, "its origins differ from the shard plan in the manifest"),
    ({"reachable": [5]}, "column reachable does not have 3 values, one per origin"),
    ({"shard": 1}, "holds shard 1, expected 0"),
    ({"graph_sha256": None}, "was computed on graph sha256 None, not this run's"),
]


def test_a_figure_the_graph_cannot_have_is_refused(reported_run, run_job, batch_env) -> None:
    """Wrapped, forged or misplaced figures: each is refused by name and leaves no report."""
    uri, prefix, folder, _ = reported_run
    path = folder / "shortest_paths" / "0.json"
    output = json.loads(path.read_text())
    assert output["origins"] == [1, 2, 3]
    assert (output["reachable"][0], output["distance_sum"][0], output["eccentricity"][0]) == (5, 26, 11)
    for change, problem in FORGED:
        if isinstance(change, tuple):
            column, value = change
            forged = {**output, column: [value, *output[column][1:]]}
        else:
            forged = {**output, **change}
        path.write_text(json.dumps(forged))
        result = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
        assert result.returncode == 1, change
        assert f"shortest_path index 0 (shortest_paths/0.json): {problem}" in result.stderr, result.stderr
        assert report_files(folder) == set()


def test_a_tolerated_bad_output_is_reported_as_such(reported_run, run_job, batch_env) -> None:
    uri, prefix, folder, _ = reported_run
    path = folder / "shortest_paths" / "1.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "graph_sha256": "0" * 64}))
    result = run_job("aggregator", ["--tolerated-failures", "1"], batch_env(uri, prefix))
    assert result.returncode == 0, result.stderr
    report = json.loads((folder / "report" / "report.json").read_text())
    assert report["summary"]["complete"] is False
    assert report["summary"]["corrupt"]["shortest_path"] == [1]
    assert "Incomplete: 1 output(s) missing or corrupt" in (folder / "report" / "report.html").read_text()


def s3_environment() -> dict[str, str]:
    """What a job needs to reach the test's S3 (the moto server the fixture started)."""
    names = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    return {name: os.environ[name] for name in names}


def s3_keys(prefix: str) -> set[str]:
    client = boto3.client("s3", region_name="us-east-1")
    listed = client.list_objects_v2(Bucket="batch-fanout-results", Prefix=prefix)
    return {item["Key"].removeprefix(prefix) for item in listed.get("Contents", [])}


@pytest.mark.slow
def test_on_s3_a_failing_aggregator_leaves_no_report(  # noqa: PLR0917
    s3_bucket, run_job, start_job, leader_command, batch_env, tmp_path
) -> None:
    uri, prefix = f"{s3_bucket}/results", "shortest_path_all_pairs/run_1"
    extra = s3_environment()
    graph = tmp_path / "g.gr"
    graph.write_text(GRAPH)
    leader = run_job(
        "leader",
        leader_command(workloads="shortest_path", graph=str(graph), shards="2"),
        batch_env(uri, prefix, extra=extra),
    )
    assert leader.returncode == 0, leader.stderr
    for index in range(2):
        child = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, index, extra=extra))
        assert child.returncode == 0, child.stderr
    ok = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix, extra=extra))
    assert ok.returncode == 0, ok.stderr
    report_prefix = f"results/{prefix}/report/"
    assert s3_keys(report_prefix) == REPORT_FILES

    boto3.client("s3", region_name="us-east-1").delete_object(
        Bucket="batch-fanout-results", Key=f"results/{prefix}/shortest_paths/1.json"
    )
    failed = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix, extra=extra))
    assert failed.returncode == 1
    assert "shortest_path index 1 (shortest_paths/1.json): missing" in failed.stderr
    assert s3_keys(report_prefix) == set()
