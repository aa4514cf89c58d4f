"""Exact or refused: strict costs, a bound that keeps every distance inside int64, exact distance sums
beyond int64, and one exit code (65) for bad input, all over the jobs' own command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_fanout_job.errors import EXIT_BAD_INPUT
from batch_fanout_job.graphs import INT64_MAX, parse_dimacs
from batch_fanout_job.limits import LEADER_MEMORY_MIB, grid_memory_mib, largest_graph_text_bytes


def run_children(start_job, module: str, args: list[str], environ_for_index, count: int) -> None:
    """Start every child at once, as Batch does, and require each to succeed."""
    running = [start_job(module, args, environ_for_index(index), timeout=120) for index in range(count)]
    for index, job in enumerate(running):
        result = job.wait()
        assert result.returncode == 0, f"child {index}: {result.stderr}"


def write_graph(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.gr"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        ("--5", "line 3: cost '--5' is not an integer (an optional sign, then digits"),
        ("+-5", "line 3: cost '+-5' is not an integer"),
        ("-+5", "line 3: cost '-+5' is not an integer"),
        ("1_000", "line 3: cost '1_000' is not an integer"),
        ("0x10", "line 3: cost '0x10' is not an integer"),
        ("-5", "line 3: cost -5 is negative"),
        (
            "9" * 5000,
            "line 3: cost '9999999999999999999999999999999999999999'... (5000 characters) (5000 digits) could",
        ),
        (
            "-" + "9" * 5000,
            "line 3: cost '-999999999999999999999999999999999999999'... (5001 characters) is negative",
        ),
        (
            str(2**63),
            f"line 3: max cost {2**63} with 3 nodes could overflow a distance: nodes x max cost = "
            f"{3 * 2**63} must be below {INT64_MAX} (2^63 - 1, int64)",
        ),
    ],
)
def test_a_bad_cost_is_refused_naming_its_line_with_the_bad_input_code(  # noqa: PLR0917
    run_job, run_store, leader_command, batch_env, tmp_path, cost, message
) -> None:
    uri, prefix, folder = run_store
    graph = write_graph(tmp_path, f"p sp 3 2\na 1 2 4\na 2 3 {cost}\n")
    result = run_job(
        "leader", leader_command(workloads="shortest_path", graph=str(graph)), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not folder.exists()  # nothing written


def test_a_plus_sign_is_an_integer_cost() -> None:
    _, _, _, costs = parse_dimacs(b"p sp 2 1\na 1 2 +7\n", "plus.gr")
    assert costs.tolist() == [7]


@pytest.mark.parametrize(
    ("arc", "message"),
    [
        ("a 1_0 2 1", "line 2: node id '1_0' is not a positive integer"),
        ("a +-1 2 1", "line 2: node id '+-1' is not a positive integer"),
        ("a -1 2 1", "line 2: node id '-1' is not a positive integer"),
        ("a 1 99999999999999999999999 1", "line 2: node id '99999999999999999999999' is out of range 1..3"),
        ("a 1 99999999999 1", "line 2: node id 99999999999 is out of range 1..3"),
        (
            f"a 1 {'9' * 5000} 1",
            "line 2: node id '9999999999999999999999999999999999999999'... (5000 characters)",
        ),
    ],
)
def test_a_bad_node_id_is_refused_naming_its_line(  # noqa: PLR0917
    run_job, run_store, leader_command, batch_env, tmp_path, arc, message
) -> None:
    uri, prefix, _ = run_store
    graph = write_graph(tmp_path, f"p sp 3 1\n{arc}\n")
    result = run_job(
        "leader", leader_command(workloads="shortest_path", graph=str(graph)), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT and message in result.stderr


def test_a_node_count_beyond_int32_is_refused_on_the_problem_line(
    run_job, run_store, leader_command, batch_env, tmp_path
) -> None:
    uri, prefix, _ = run_store
    graph = write_graph(tmp_path, "p sp 4294967296 1\na 1 2 1\n")
    result = run_job(
        "leader", leader_command(workloads="shortest_path", graph=str(graph)), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert "line 1: 4294967296 nodes is more than 2147483647 (node indices are int32)" in result.stderr


def test_three_arcs_of_two_to_the_62_are_refused_not_wrapped(
    run_job, run_store, leader_command, batch_env, tmp_path
) -> None:
    """The issue's case: a chain whose path sum (3 x 2^62) passes int64 once reported negative distances."""
    uri, prefix, folder = run_store
    cost = 2**62
    graph = write_graph(tmp_path, f"p sp 4 3\na 1 2 {cost}\na 2 3 {cost}\na 3 4 {cost}\n")
    result = run_job(
        "leader", leader_command(workloads="shortest_path", graph=str(graph)), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert f"nodes x max cost = {4 * cost} must be below {INT64_MAX}" in result.stderr
    assert f"costs on this graph must be at most {(INT64_MAX - 1) // 4}" in result.stderr
    assert not folder.exists()


def test_at_the_bound_distances_are_exact_and_sums_beyond_int64_are_exact(  # noqa: PLR0917
    run_job, start_job, run_store, leader_command, batch_env, tmp_path
) -> None:
    """The largest cost the bound allows: each distance fits int64, their sum does not, and both are
    reported exactly (the kernel's int64 sum would wrap), through leader, child and aggregator."""
    uri, prefix, folder = run_store
    cost = (INT64_MAX - 1) // 4
    graph = write_graph(tmp_path, f"p sp 4 3\na 1 2 {cost}\na 2 3 {cost}\na 3 4 {cost}\n")
    leader = run_job(
        "leader",
        leader_command(workloads="shortest_path", graph=str(graph), shards="2", origins="1,2"),
        batch_env(uri, prefix),
    )
    assert leader.returncode == 0, leader.stderr
    run_children(
        start_job, "shortest_path", ["--paths-for", "1:4"], lambda i: batch_env(uri, prefix, array_index=i), 2
    )
    first = json.loads((folder / "shortest_paths" / "0.json").read_text())
    assert first["origins"] == [1]
    assert first["eccentricity"] == [3 * cost]
    assert first["distance_sum"] == [6 * cost] and 6 * cost > INT64_MAX
    assert first["reachable"] == [4]
    assert first["paths"] == [{"origin": 1, "target": 4, "cost": 3 * cost, "nodes": [1, 2, 3, 4]}]
    assert first["closeness"] == [pytest.approx(3 / (6 * cost))]
    second = json.loads((folder / "shortest_paths" / "1.json").read_text())
    assert second["distance_sum"] == [3 * cost] and second["eccentricity"] == [2 * cost]

    aggregated = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
    assert aggregated.returncode == 0, aggregated.stderr
    report = json.loads((folder / "report" / "report.json").read_text())
    assert report["summary"]["complete"] is True
    assert report["shortest_paths"]["diameter_of_origins"] == 3 * cost
    assert report["shortest_paths"]["eccentricity"]["max"] == 3 * cost
    rows = (folder / "report" / "shortest_paths.csv").read_text().splitlines()
    assert rows[1] == f"1,0,4,{6 * cost},{3 * cost},{first['closeness'][0]}"


def test_a_grid_beyond_the_memory_bound_is_refused_before_it_is_allocated(
    run_job, run_store, leader_command, batch_env
) -> None:
    uri, prefix, folder = run_store
    estimate = grid_memory_mib(100_000, 100_000)
    result = run_job(
        "leader", leader_command(workloads="shortest_path", grid="100000x100000"), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert (
        f"--grid 100000x100000: generating 10000000000 nodes needs about {estimate} MiB" in result.stderr
        and f"more than the leader's {LEADER_MEMORY_MIB} MiB" in result.stderr
    )
    assert "Unable to allocate" not in result.stderr and "Traceback" not in result.stderr
    assert not folder.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workloads": "stress", "methods": "nosuch"}, "--methods: 'nosuch' matches no CPU method"),
        ({"workloads": "stress", "tests": "0"}, "--tests '0': expected a positive integer"),
        ({"workloads": "stress", "stress_duration": "soon"}, "--stress-duration 'soon'"),
        ({"workloads": "shortest_path", "grid": "8by8"}, "--grid '8by8': expected ROWSxCOLUMNS"),
        ({"workloads": "shortest_path", "grid": "4x4", "shards": "17"}, "--shards 17: only"),
        (
            {"workloads": "shortest_path", "graph": "file:///no/such/graph.gr"},
            "file:///no/such/graph.gr does not exist",
        ),
        ({"workloads": "shortest_path", "graph": "nosuchfs://x/y.gr"}, "nosuchfs://x/y.gr cannot be opened"),
    ],
)
def test_every_input_error_of_the_leader_exits_with_the_bad_input_code(  # noqa: PLR0917
    run_job, run_store, leader_command, batch_env, options, message
) -> None:
    uri, prefix, _ = run_store
    result = run_job("leader", leader_command(**options), batch_env(uri, prefix))
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert message in result.stderr


def test_a_failure_that_may_pass_keeps_the_ordinary_error_code(run_job, run_store, batch_env) -> None:
    """A store that is not there is not the run's input: Batch may retry it."""
    uri, prefix, _ = run_store
    result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 1 and "manifest.json does not exist" in result.stderr


def test_a_child_refuses_a_graph_archive_beyond_the_bound(run_job, run_store, batch_env) -> None:
    """A graph archive the leader did not check (written by hand) cannot overflow the kernel either."""
    import hashlib
    import io

    import numpy as np

    uri, prefix, folder = run_store
    buffer = io.BytesIO()
    weights = np.array([2**62, 2**62, 2**62], dtype=np.int64)
    np.savez(
        buffer, indptr=np.array([0, 1, 2, 3, 3]), indices=np.array([1, 2, 3], dtype=np.int32), weights=weights
    )
    (folder / "graph").mkdir(parents=True)
    (folder / "graph" / "graph.npz").write_bytes(buffer.getvalue())
    manifest = {
        "workloads": ["shortest_path"],
        "array_sizes": {"stress": 0, "shortest_path": 1},
        "graph": {"file": "graph/graph.npz", "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()},
        "shards": [{"first": 1, "last": 1, "count": 1}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=0))
    assert result.returncode == EXIT_BAD_INPUT
    assert f"nodes x max cost = {4 * 2**62} must be below {INT64_MAX}" in result.stderr
    assert not (folder / "shortest_paths").exists()


def test_a_graph_whose_text_is_beyond_the_memory_bound_is_refused_without_expanding_it(
    run_job, run_store, leader_command, batch_env, tmp_path
) -> None:
    """A small gzip file that expands past what the leader can parse: refused with its bound."""
    import gzip

    uri, prefix, folder = run_store
    bound = largest_graph_text_bytes()
    graph = tmp_path / "bomb.gr.gz"
    with gzip.open(graph, "wb", compresslevel=9) as handle:
        handle.write(b"p sp 2 1\na 1 2 1\n")
        handle.write(b"c" + b" " * (2 * bound))
    assert graph.stat().st_size < bound // 100
    result = run_job(
        "leader", leader_command(workloads="shortest_path", graph=str(graph)), batch_env(uri, prefix)
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert f"reading {bound + 1} bytes of DIMACS text needs about" in result.stderr
    assert (
        f"more than the leader's {LEADER_MEMORY_MIB} MiB: the leader reads at most {bound} bytes"
        in result.stderr
    )
    assert not folder.exists()
