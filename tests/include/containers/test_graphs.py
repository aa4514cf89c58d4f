from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from batch_fanout_job.errors import JobError
from batch_fanout_job.graphs import generate_road_grid, graph_from_bytes, graph_to_bytes, read_dimacs

SMALL = b"c tiny\np sp 4 5\na 1 2 7\na 1 2 3\na 2 3 1\na 3 4 2\na 4 1 5\n"


def test_parallel_arcs_keep_the_cheapest() -> None:
    build = read_dimacs(SMALL, "tiny.gr")
    graph = build.graph
    assert (graph.node_count, graph.arc_count, build.merged_duplicate_arcs) == (4, 4, 1)
    start, end = graph.indptr[0], graph.indptr[1]
    assert list(graph.indices[start:end]) == [1] and list(graph.weights[start:end]) == [3]


def test_gzip_input_reads_like_plain_input() -> None:
    plain = read_dimacs(SMALL, "tiny.gr").graph
    zipped = read_dimacs(gzip.compress(SMALL), "tiny.gr.gz").graph
    assert np.array_equal(plain.weights, zipped.weights) and np.array_equal(plain.indices, zipped.indices)


def test_rome99_has_its_eleven_duplicate_arcs_merged(rome99_path: Path) -> None:
    build = read_dimacs(rome99_path.read_bytes(), str(rome99_path))
    assert (build.graph.node_count, build.input_arcs, build.merged_duplicate_arcs) == (3353, 8870, 11)
    assert build.graph.arc_count == 8859


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no problem line"),
        (b"c only comments\n", "no problem line"),
        (b"p sp 0 0\n", "empty graph"),
        (b"p sp 3 2\na 1 2 4\n", "declares 2 arcs but the file has 1"),
        (b"p sp 3 1\na 1 2 4\na 2 3 1\n", "declares 1 arcs but the file has 2"),
        (b"p sp 3 1\na 1 2 -4\n", "line 2: cost -4 is negative"),
        (b"p sp 3 1\na 1 2 2.5\n", "line 2: cost '2.5' is not an integer"),
        (b"p sp 3 1\na 1 9 2\n", "line 2: node id 9 is out of range 1..3"),
        (b"p sp 3 1\na 0 2 2\n", "line 2: node id 0 is out of range"),
        (b"p sp 3 1\na 1 2\n", "line 2: expected 'a FROM TO COST'"),
        (b"a 1 2 3\np sp 3 1\n", "line 1: arc before the problem line"),
        (b"p sp 3 1\np sp 3 1\na 1 2 3\n", "line 2: a second problem line"),
        (b"p max 3 1\na 1 2 3\n", "line 1: expected 'p sp NODES ARCS'"),
        (b"p sp 3 1\nx 1 2 3\n", "line 2: unknown line type 'x'"),
        (b"p sp 3 1\na 1 2 \xff\n", "not a DIMACS text file"),
    ],
)
def test_bad_graph_is_refused_naming_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(JobError, match=r"bad\.gr: .*" + re.escape(message)):
        read_dimacs(data, "bad.gr")


def test_truncated_gzip_is_refused() -> None:
    with pytest.raises(JobError, match=r"bad\.gr\.gz: corrupt or truncated gzip"):
        read_dimacs(gzip.compress(SMALL * 50)[:40], "bad.gr.gz")


def test_generated_grid_is_reproducible_connected_and_symmetric() -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    first = generate_road_grid(30, 40, 0.7, seed=5).graph
    second = generate_road_grid(30, 40, 0.7, seed=5).graph
    other = generate_road_grid(30, 40, 0.7, seed=6).graph
    assert np.array_equal(first.weights, second.weights) and np.array_equal(first.indices, second.indices)
    assert not (first.arc_count == other.arc_count and np.array_equal(first.weights, other.weights))
    n = first.node_count
    assert 600 < n <= 1200
    matrix = csr_matrix((first.weights, first.indices, first.indptr), shape=(n, n))
    assert connected_components(matrix, directed=True, connection="strong")[0] == 1
    assert (matrix != 0).sum() == (matrix.T != 0).sum()  # every road both ways
    assert first.weights.min() >= 1 and first.weights.max() <= 1000


def test_generator_refuses_bad_settings() -> None:
    with pytest.raises(JobError, match=r"edge probability 1\.5"):
        generate_road_grid(4, 4, 1.5, seed=0)
    with pytest.raises(JobError, match="grid 1x1"):
        generate_road_grid(1, 1, 0.5, seed=0)


def test_binary_graph_round_trips_and_corrupt_archives_are_named() -> None:
    graph = read_dimacs(SMALL, "tiny.gr").graph
    loaded = graph_from_bytes(graph_to_bytes(graph), "graph.npz")
    assert np.array_equal(loaded.indptr, graph.indptr) and np.array_equal(loaded.weights, graph.weights)
    with pytest.raises(JobError, match=r"graph\.npz: not a graph archive"):
        graph_from_bytes(b"garbage", "graph.npz")
