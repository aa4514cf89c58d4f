"""The contraction hierarchy and its PHAST queries against the Dijkstra kernel and scipy: random graphs
(hypothesis), the Rome road network, a road-like grid, and the archive the leader writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from sssp_kernel import UNREACHABLE, SingleSource, summarize_origins

from batch_fanout_job.errors import JobError
from batch_fanout_job.graphs import Graph, generate_road_grid, read_dimacs
from batch_fanout_job.hierarchy import (
    INFINITY,
    Phast,
    build_hierarchy,
    hierarchy_from_bytes,
    hierarchy_to_bytes,
)


def raw_csr(nodes: int, tails: np.ndarray, heads: np.ndarray, costs: np.ndarray) -> Graph:
    """A CSR graph exactly as given: parallel arcs and self loops kept (the hierarchy must cope)."""
    order = np.argsort(tails, kind="stable")
    indptr = np.zeros(nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(tails, minlength=nodes), out=indptr[1:])
    return Graph(indptr, heads[order].astype(np.int32), costs[order].astype(np.int64))


def scipy_rows(graph: Graph, origins: np.ndarray) -> np.ndarray:
    """scipy's distances with the cheapest of parallel arcs (scipy would add them) and no loops."""
    tails = np.repeat(np.arange(graph.node_count), np.diff(graph.indptr))
    best: dict[tuple[int, int], int] = {}
    for tail, head, cost in zip(tails.tolist(), graph.indices.tolist(), graph.weights.tolist(), strict=True):
        if tail != head:
            best[(tail, head)] = min(cost, best.get((tail, head), cost))
    if not best:
        rows = np.full((origins.shape[0], graph.node_count), -1, dtype=np.int64)
        rows[np.arange(origins.shape[0]), origins] = 0
        return rows
    keys = np.array(list(best), dtype=np.int64)
    values = np.array(list(best.values()), dtype=np.float64)
    # scipy drops explicit zeros from a sparse matrix: zero costs become a tiny cost, rounded away.
    values[values == 0] = 1e-9
    matrix = csr_matrix((values, (keys[:, 0], keys[:, 1])), shape=(graph.node_count, graph.node_count))
    result = dijkstra(matrix, indices=origins)
    return np.where(np.isfinite(result), np.round(result), -1).astype(np.int64)


def assert_phast_is_exact(graph: Graph, origins: np.ndarray, width: int) -> None:
    hierarchy = build_hierarchy(graph.indptr, graph.indices, graph.weights)
    phast = Phast(hierarchy, width=width)
    reachable, distance_sum, eccentricity = phast.summaries(origins)
    expected = summarize_origins(graph.indptr, graph.indices, graph.weights, origins)
    np.testing.assert_array_equal(reachable, expected.reachable)
    np.testing.assert_array_equal(distance_sum, expected.distance_sum)
    np.testing.assert_array_equal(eccentricity, expected.eccentricity)
    runner = SingleSource(graph.indptr, graph.indices, graph.weights)
    reference = scipy_rows(graph, origins)
    for position, origin in enumerate(origins):
        row = phast.distances(int(origin))
        dijkstra_row = runner.distances(int(origin))[0]
        np.testing.assert_array_equal(row == INFINITY, dijkstra_row == UNREACHABLE)
        np.testing.assert_array_equal(row, dijkstra_row)
        np.testing.assert_array_equal(np.where(row == INFINITY, -1, row), reference[position])


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Graph, np.ndarray, int]:
    nodes = draw(st.integers(1, 40))
    arcs = draw(st.integers(0, 5 * nodes))
    max_cost = draw(st.sampled_from([0, 1, 3, 1000, 10**12]))
    node = st.integers(0, nodes - 1)
    tails = np.array(draw(st.lists(node, min_size=arcs, max_size=arcs)), dtype=np.int64)
    heads = np.array(draw(st.lists(node, min_size=arcs, max_size=arcs)), dtype=np.int64)
    costs = np.array(draw(st.lists(st.integers(0, max_cost), min_size=arcs, max_size=arcs)), dtype=np.int64)
    origins = np.array(draw(st.lists(node, min_size=1, max_size=nodes)), dtype=np.int64)
    return raw_csr(nodes, tails, heads, costs), origins, draw(st.integers(1, 5))


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_phast_equals_dijkstra_and_scipy_on_random_graphs(case: tuple[Graph, np.ndarray, int]) -> None:
    # Zero costs, parallel arcs, self loops, unreachable parts and repeated origins all occur here.
    graph, origins, width = case
    assert_phast_is_exact(graph, origins, width)


@pytest.mark.parametrize(
    ("tails", "heads", "costs"),
    [
        ([0, 1, 2, 2], [1, 2, 0, 2], [0, 0, 0, 5]),  # a zero-cost cycle and a self loop
        ([0, 0, 0, 1], [1, 1, 1, 2], [7, 3, 5, 1]),  # parallel arcs: the cheapest counts
        ([0, 2], [1, 3], [4, 4]),  # two parts: nothing crosses
        ([], [], []),  # no arc at all
    ],
)
def test_phast_on_small_corner_cases(tails: list[int], heads: list[int], costs: list[int]) -> None:
    graph = raw_csr(4, np.array(tails, dtype=np.int64), np.array(heads, dtype=np.int64), np.array(costs))
    assert_phast_is_exact(graph, np.arange(4), width=3)


def test_phast_equals_dijkstra_on_rome99(rome99_path: Path) -> None:
    graph = read_dimacs(rome99_path.read_bytes(), str(rome99_path)).graph
    assert_phast_is_exact(graph, np.array([0, 1, 500, 1234, 2000, 3352]), width=4)


def test_phast_equals_dijkstra_on_a_road_like_grid() -> None:
    graph = generate_road_grid(48, 48, 0.7, 5).graph
    origins = np.random.default_rng(5).choice(graph.node_count, 9, replace=False)
    assert_phast_is_exact(graph, origins, width=4)


def test_archive_round_trip_gives_the_same_answers(rome99_path: Path) -> None:
    graph = read_dimacs(rome99_path.read_bytes(), str(rome99_path)).graph
    hierarchy = build_hierarchy(graph.indptr, graph.indices, graph.weights)
    loaded = hierarchy_from_bytes(hierarchy_to_bytes(hierarchy), "hierarchy.npz", graph.node_count)
    origins = np.arange(0, graph.node_count, 211)
    for first, second in zip(
        Phast(hierarchy).summaries(origins), Phast(loaded).summaries(origins), strict=True
    ):
        np.testing.assert_array_equal(first, second)


def test_archive_of_another_graph_or_no_archive_is_refused() -> None:
    graph = generate_road_grid(8, 8, 0.9, 1).graph
    data = hierarchy_to_bytes(build_hierarchy(graph.indptr, graph.indices, graph.weights))
    with pytest.raises(JobError, match=r"s3://b/h\.npz: the hierarchy does not fit the graph of 5 nodes"):
        hierarchy_from_bytes(data, "s3://b/h.npz", 5)
    with pytest.raises(JobError, match=r"s3://b/h\.npz: not a contraction hierarchy archive"):
        hierarchy_from_bytes(b"not an archive", "s3://b/h.npz", graph.node_count)


def test_negative_costs_are_refused() -> None:
    graph = raw_csr(2, np.array([0]), np.array([1]), np.array([-1]))
    with pytest.raises(JobError, match="arc costs must be non-negative"):
        build_hierarchy(graph.indptr, graph.indices, graph.weights)


def test_costs_that_could_overflow_a_shortcut_are_refused() -> None:
    # Dijkstra is exact here (3 x 2^61 < 2^63), a shortcut plus an arc in the sweep might not be.
    graph = raw_csr(3, np.array([0, 1]), np.array([1, 2]), np.array([2**61, 2**61]))
    with pytest.raises(JobError, match="could overflow int64"):
        build_hierarchy(graph.indptr, graph.indices, graph.weights)


def test_phast_rejects_an_origin_outside_the_graph() -> None:
    graph = generate_road_grid(4, 4, 1.0, 1).graph
    phast = Phast(build_hierarchy(graph.indptr, graph.indices, graph.weights))
    with pytest.raises(ValueError, match="origin not a node of the hierarchy"):
        phast.summaries(np.array([graph.node_count]))


def test_leader_builds_no_hierarchy_that_would_not_fit_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from leader import prepare_hierarchy

    from batch_fanout_job import limits

    graph = generate_road_grid(40, 40, 0.9, 1).graph
    shards = [{"first": 1, "last": graph.node_count}]
    data, entry = prepare_hierarchy(graph, shards)
    assert data is not None and entry is not None and entry["file"] == "graph/hierarchy.npz"
    # The same run with a leader whose memory is already used up: Dijkstra, no build.
    monkeypatch.setattr(limits, "LEADER_MEMORY_MIB", 1)
    assert prepare_hierarchy(graph, shards) == (None, None)
