"""The shortest-path kernel against networkx, on random graphs and on the Rome road network."""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from sssp_kernel import UNREACHABLE, SingleSource, path_to, summarize_origins

from batch_fanout_job.graphs import Graph, build_csr, read_dimacs


def to_networkx(graph: Graph) -> nx.DiGraph:
    result = nx.DiGraph()
    result.add_nodes_from(range(graph.node_count))
    for tail in range(graph.node_count):
        for arc in range(graph.indptr[tail], graph.indptr[tail + 1]):
            result.add_edge(tail, int(graph.indices[arc]), weight=int(graph.weights[arc]))
    return result


def random_graph(seed: int, nodes: int, arcs: int, max_cost: int) -> Graph:
    rng = np.random.default_rng(seed)
    tails = rng.integers(0, nodes, arcs)
    heads = rng.integers(0, nodes, arcs)
    costs = rng.integers(0, max_cost + 1, arcs)  # zero costs and parallel arcs included
    return build_csr(nodes, tails, heads, costs).graph


def assert_matches_networkx(graph: Graph, reference: nx.DiGraph, sources: list[int]) -> None:
    runner = SingleSource(graph.indptr, graph.indices, graph.weights)
    for source in sources:
        expected = nx.single_source_dijkstra_path_length(reference, source, weight="weight")
        distances, predecessors = runner.distances(source, with_predecessors=True)
        assert predecessors is not None
        reached = {node: int(value) for node, value in enumerate(distances) if value != UNREACHABLE}
        assert reached == expected, f"source {source}"
        for target in list(expected)[:: max(1, len(expected) // 20)]:
            nodes = path_to(predecessors, source, target)
            cost = sum(reference[a][b]["weight"] for a, b in itertools.pairwise(nodes))
            assert nodes[0] == source and nodes[-1] == target and cost == expected[target]


@pytest.mark.parametrize("seed", range(8))
def test_distances_equal_networkx_on_random_graphs(seed: int) -> None:
    nodes = [5, 40, 200, 600][seed % 4]
    graph = random_graph(seed, nodes, nodes * (1 + seed % 3) * 2, max_cost=[1, 10, 1000, 10**9][seed % 4])
    reference = to_networkx(graph)
    assert_matches_networkx(graph, reference, list(range(0, nodes, max(1, nodes // 7))))


def test_distances_equal_networkx_on_rome99(rome99_path: Path) -> None:
    graph = read_dimacs(rome99_path.read_bytes(), str(rome99_path)).graph
    reference = nx.DiGraph()
    # networkx built straight from the file, keeping the cheapest of each duplicate arc
    for line in rome99_path.read_text().splitlines():
        if line.startswith("a "):
            _, tail, head, cost = line.split()
            a, b, w = int(tail) - 1, int(head) - 1, int(cost)
            if not reference.has_edge(a, b) or reference[a][b]["weight"] > w:
                reference.add_edge(a, b, weight=w)
    assert_matches_networkx(graph, reference, [0, 1, 500, 1234, 2000, 3352])


def test_origin_summaries_equal_networkx_figures(rome99_path: Path) -> None:
    graph = read_dimacs(rome99_path.read_bytes(), str(rome99_path)).graph
    reference = to_networkx(graph)
    origins = np.array([0, 17, 999, 3352])
    summaries = summarize_origins(graph.indptr, graph.indices, graph.weights, origins)
    closeness = summaries.closeness(graph.node_count)
    reversed_graph = reference.reverse()
    for position, origin in enumerate(origins):
        lengths = nx.single_source_dijkstra_path_length(reference, int(origin), weight="weight")
        assert summaries.reachable[position] == len(lengths)
        assert summaries.distance_sum[position] == sum(lengths.values())
        assert summaries.eccentricity[position] == max(lengths.values())
        expected = nx.closeness_centrality(reversed_graph, u=int(origin), distance="weight")
        assert closeness[position] == pytest.approx(expected, rel=1e-12)


def test_unreachable_nodes_are_not_counted() -> None:
    graph = build_csr(4, np.array([0, 1]), np.array([1, 0]), np.array([3, 4])).graph
    summaries = summarize_origins(graph.indptr, graph.indices, graph.weights, np.array([0, 2]))
    assert list(summaries.reachable) == [2, 1]
    assert list(summaries.eccentricity) == [3, 0]
    assert list(summaries.closeness(4)) == [pytest.approx((1 / 3) * (1 / 3)), 0.0]
    distances, predecessors = SingleSource(graph.indptr, graph.indices, graph.weights).distances(0, True)
    assert distances[2] == UNREACHABLE and predecessors is not None and path_to(predecessors, 0, 2) == []
