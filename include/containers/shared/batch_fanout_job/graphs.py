"""Weighted directed graphs: DIMACS ``.gr`` parsing and validation, a road-like generator, and the
compact binary form (CSR) the leader writes once and every shortest-path child loads.

Node ids are 1-based in files, manifests and results (as in DIMACS); arrays use ``id - 1``.
Parallel arcs are merged keeping the cheapest: a scipy sparse matrix built straight from an arc list
would add their costs instead.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass

import numpy as np

from batch_fanout_job.errors import BadInputError, JobError

GZIP_MAGIC = b"\x1f\x8b"
#: The distance type's largest value marks "unreachable" in the kernel, so every real distance, and
#: every candidate ``d + cost`` the kernel forms, must stay below it.
INT64_MAX = int(np.iinfo(np.int64).max)
#: Arc heads are stored as int32.
MAX_NODES = int(np.iinfo(np.int32).max)
# ASCII only (the text is decoded as ASCII first): no Unicode digits, no "1_000", no "--5".
_COST = re.compile(r"[+-]?[0-9]+")
_NODE_ID = re.compile(r"\+?[0-9]+")
# No id, count or cost that fits int64 has more digits (and int() refuses more than 4,300).
_MAX_DIGITS = 19


def _short(text: str) -> str:
    """``repr`` of a field for a message, cut short: a line may hold a megabyte of digits."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


@dataclass(frozen=True)
class Graph:
    """A directed graph in compressed sparse row form, cheapest arc per (from, to).

    :param indptr: ``int64[n + 1]``; the arcs out of node ``i`` are ``indptr[i]:indptr[i + 1]``.
    :param indices: ``int32[m]`` head node of each arc (0-based).
    :param weights: ``int64[m]`` non-negative cost of each arc.
    """

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray

    @property
    def node_count(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def arc_count(self) -> int:
        return int(self.indices.shape[0])


@dataclass(frozen=True)
class GraphBuild:
    """A graph and what was done to build it, for the manifest."""

    graph: Graph
    input_arcs: int
    merged_duplicate_arcs: int


def decompress_if_gzip(data: bytes, name: str, limit: int | None = None) -> bytes:
    """Return ``data`` gunzipped when it starts with the gzip magic bytes.

    :param data: the file's bytes.
    :param name: the input's name for error messages.
    :param limit: when given, stop after ``limit + 1`` bytes of text: a caller that refuses more than
        ``limit`` bytes never holds all of a file that expands beyond it (a gzip bomb).
    :raises BadInputError: naming the input when the gzip stream is truncated or corrupt.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            return stream.read(-1 if limit is None else limit + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise BadInputError(f"{name}: corrupt or truncated gzip data: {error}") from error


def check_distance_bound(node_count: int, max_cost: int, name: str) -> None:
    """Refuse a graph on which a shortest-path distance could overflow int64.

    A shortest path has at most ``nodes - 1`` arcs, and the kernel also forms ``distance + cost`` for
    the arcs out of the farthest node, so ``nodes x max cost`` must stay below int64's largest value
    (which marks unreachable nodes). Within that bound every distance the kernel computes is exact.

    :param node_count: number of nodes.
    :param max_cost: the largest arc cost.
    :param name: the input's name for the error message.
    :raises BadInputError: stating the bound and the graph's figures when it does not hold.
    """
    if node_count > MAX_NODES:
        raise BadInputError(f"{name}: {node_count} nodes is more than {MAX_NODES} (node indices are int32)")
    if node_count * max_cost >= INT64_MAX:
        raise BadInputError(
            f"{name}: max cost {max_cost} with {node_count} nodes could overflow a distance: "
            f"nodes x max cost = {node_count * max_cost} must be below {INT64_MAX} (2^63 - 1, int64), "
            f"so costs on this graph must be at most {(INT64_MAX - 1) // node_count}"
        )


def parse_dimacs(data: bytes, name: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Parse and validate a DIMACS shortest-path file (``p sp N M`` then ``a FROM TO COST`` lines).

    :param data: the file's bytes (plain text; see :func:`decompress_if_gzip`).
    :param name: the input's name for error messages.
    :returns: node count and 0-based tails, heads and costs of every arc as given.
    :raises BadInputError: naming the line at fault: a missing or repeated problem line, an arc before
        it, a malformed line, a node id out of range, a negative or non-integer cost (an optional sign
        and digits, nothing else), a cost that could overflow a distance (:func:`check_distance_bound`),
        a header whose arc count disagrees with the arcs, an empty graph.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{name}: not a DIMACS text file (byte {error.start} is not ASCII)") from error
    node_count: int | None = None
    declared_arcs = 0
    header_line = 0
    max_cost = 0
    tails: list[int] = []
    heads: list[int] = []
    costs: list[int] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "c":
            continue
        kind = fields[0]
        if kind == "a":
            if node_count is None:
                raise BadInputError(f"{name}: line {line_number}: arc before the problem line 'p sp N M'")
            if len(fields) != 4:
                raise BadInputError(
                    f"{name}: line {line_number}: expected 'a FROM TO COST', got {_short(line.strip())}"
                )
            for text_id in (fields[1], fields[2]):
                if not _NODE_ID.fullmatch(text_id):
                    raise BadInputError(
                        f"{name}: line {line_number}: node id {_short(text_id)} is not a positive integer: "
                        f"{_short(line.strip())}"
                    )
                if len(text_id) > _MAX_DIGITS:  # int() refuses beyond 4,300 digits; no id has 20
                    raise BadInputError(
                        f"{name}: line {line_number}: node id {_short(text_id)} is out of range 1..{node_count} "
                        "(from the problem line)"
                    )
            tail, head = int(fields[1]), int(fields[2])
            cost_text = fields[3]
            if not _COST.fullmatch(cost_text):
                raise BadInputError(
                    f"{name}: line {line_number}: cost {_short(cost_text)} is not an integer (an optional "
                    "sign, then digits; costs are non-negative integers)"
                )
            if len(cost_text.lstrip("+-")) > _MAX_DIGITS and not cost_text.startswith("-"):
                raise BadInputError(
                    f"{name}: line {line_number}: cost {_short(cost_text)} ({len(cost_text)} digits) could "
                    f"overflow a distance: nodes x max cost must be below {INT64_MAX} (2^63 - 1, int64), "
                    f"so costs on this graph must be at most {(INT64_MAX - 1) // node_count}"
                )
            if len(cost_text.lstrip("+-")) > _MAX_DIGITS:
                raise BadInputError(f"{name}: line {line_number}: cost {_short(cost_text)} is negative")
            cost = int(cost_text)
            if cost < 0:
                raise BadInputError(f"{name}: line {line_number}: cost {cost} is negative")
            if cost > max_cost:
                # Checked here, on Python ints, so that numpy never sees a cost that does not fit.
                check_distance_bound(node_count, cost, f"{name}: line {line_number}")
                max_cost = cost
            for node in (tail, head):
                if not 1 <= node <= node_count:
                    raise BadInputError(
                        f"{name}: line {line_number}: node id {node} is out of range 1..{node_count} "
                        "(from the problem line)"
                    )
            tails.append(tail - 1)
            heads.append(head - 1)
            costs.append(cost)
        elif kind == "p":
            if node_count is not None:
                raise BadInputError(
                    f"{name}: line {line_number}: a second problem line (first on line {header_line})"
                )
            if len(fields) != 4 or fields[1] != "sp" or not fields[2].isdigit() or not fields[3].isdigit():
                raise BadInputError(
                    f"{name}: line {line_number}: expected 'p sp NODES ARCS', got {_short(line.strip())}"
                )
            if max(len(fields[2]), len(fields[3])) > _MAX_DIGITS:
                raise BadInputError(
                    f"{name}: line {line_number}: {_short(line.strip())} declares more nodes or arcs than "
                    f"{MAX_NODES} nodes (node indices are int32) can have"
                )
            node_count, declared_arcs, header_line = int(fields[2]), int(fields[3]), line_number
            check_distance_bound(node_count, 0, f"{name}: line {line_number}")
        else:
            raise BadInputError(
                f"{name}: line {line_number}: unknown line type {kind!r} (expected c, p or a)"
            )
    if node_count is None:
        raise BadInputError(f"{name}: no problem line 'p sp NODES ARCS': empty or not a DIMACS .gr file")
    if node_count == 0 or declared_arcs == 0:
        raise BadInputError(
            f"{name}: empty graph: the problem line (line {header_line}) declares {node_count} "
            f"nodes and {declared_arcs} arcs"
        )
    if len(costs) != declared_arcs:
        raise BadInputError(
            f"{name}: the problem line (line {header_line}) declares {declared_arcs} arcs but the file has "
            f"{len(costs)} (truncated file or wrong header)"
        )
    return (
        node_count,
        np.asarray(tails, dtype=np.int64),
        np.asarray(heads, dtype=np.int64),
        np.asarray(costs, dtype=np.int64),
    )


def build_csr(node_count: int, tails: np.ndarray, heads: np.ndarray, costs: np.ndarray) -> GraphBuild:
    """Merge parallel arcs keeping the cheapest, and build the CSR form.

    :param node_count: number of nodes.
    :param tails: 0-based tail of each arc.
    :param heads: 0-based head of each arc.
    :param costs: non-negative integer cost of each arc.
    """
    order = np.lexsort((costs, heads, tails))
    tails, heads, costs = tails[order], heads[order], costs[order]
    keep = np.ones(tails.shape[0], dtype=bool)
    keep[1:] = (tails[1:] != tails[:-1]) | (heads[1:] != heads[:-1])
    tails, heads, costs = tails[keep], heads[keep], costs[keep]
    indptr = np.zeros(node_count + 1, dtype=np.int64)
    np.cumsum(np.bincount(tails, minlength=node_count), out=indptr[1:])
    graph = Graph(indptr=indptr, indices=heads.astype(np.int32), weights=costs.astype(np.int64))
    return GraphBuild(graph=graph, input_arcs=int(order.shape[0]), merged_duplicate_arcs=int((~keep).sum()))


def read_dimacs(data: bytes, name: str) -> GraphBuild:
    """Parse, validate and build a graph from a DIMACS ``.gr`` file, plain or gzip.

    :param data: the file's bytes.
    :param name: the input's name (URI) for error messages.
    """
    node_count, tails, heads, costs = parse_dimacs(decompress_if_gzip(data, name), name)
    return build_csr(node_count, tails, heads, costs)


def generate_road_grid(rows: int, columns: int, edge_probability: float, seed: int) -> GraphBuild:
    """Generate a road-like graph: a ``rows`` x ``columns`` grid, each edge kept with
    ``edge_probability``, integer costs 1..1000 drawn independently for both directions, restricted to
    its largest connected part and renumbered in grid order.

    :param rows: grid rows (at least 1).
    :param columns: grid columns (at least 1).
    :param edge_probability: chance that each grid edge exists, in (0, 1].
    :param seed: seed of the random generator; the same seed gives the same graph.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if rows < 1 or columns < 1 or rows * columns < 2:
        raise BadInputError(f"grid {rows}x{columns}: needs at least 2 nodes")
    if not 0.0 < edge_probability <= 1.0:
        raise BadInputError(f"edge probability {edge_probability} is not in (0, 1]")
    rng = np.random.default_rng(seed)
    node = np.arange(rows * columns, dtype=np.int64).reshape(rows, columns)
    horizontal = (node[:, :-1].ravel(), node[:, 1:].ravel())
    vertical = (node[:-1, :].ravel(), node[1:, :].ravel())
    ends_a = np.concatenate([horizontal[0], vertical[0]])
    ends_b = np.concatenate([horizontal[1], vertical[1]])
    kept = rng.random(ends_a.shape[0]) < edge_probability
    ends_a, ends_b = ends_a[kept], ends_b[kept]
    forward_costs = rng.integers(1, 1001, size=ends_a.shape[0], dtype=np.int64)
    backward_costs = rng.integers(1, 1001, size=ends_a.shape[0], dtype=np.int64)
    total = rows * columns
    adjacency = coo_matrix((np.ones(ends_a.shape[0]), (ends_a, ends_b)), shape=(total, total))
    _, labels = connected_components(adjacency, directed=False)
    largest = np.bincount(labels).argmax()
    in_part = labels == largest
    if int(in_part.sum()) < 2:
        raise BadInputError(
            f"grid {rows}x{columns} with edge probability {edge_probability} and seed {seed}: "
            "no connected part has 2 nodes"
        )
    renumber = np.full(total, -1, dtype=np.int64)
    renumber[in_part] = np.arange(int(in_part.sum()), dtype=np.int64)
    edge_in_part = in_part[ends_a]  # both ends share a component
    a, b = renumber[ends_a[edge_in_part]], renumber[ends_b[edge_in_part]]
    tails = np.concatenate([a, b])
    heads = np.concatenate([b, a])
    costs = np.concatenate([forward_costs[edge_in_part], backward_costs[edge_in_part]])
    return build_csr(int(in_part.sum()), tails, heads, costs)


def graph_to_bytes(graph: Graph) -> bytes:
    """Serialize a graph to the ``graph/graph.npz`` form (uncompressed: children load it fast)."""
    buffer = io.BytesIO()
    np.savez(buffer, indptr=graph.indptr, indices=graph.indices, weights=graph.weights)
    return buffer.getvalue()


def graph_from_bytes(data: bytes, name: str) -> Graph:
    """Load a graph written by :func:`graph_to_bytes`, checking that its arrays fit together.

    :raises JobError: naming the input when it is not such a file or is inconsistent.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            indptr = np.ascontiguousarray(archive["indptr"], dtype=np.int64)
            indices = np.ascontiguousarray(archive["indices"], dtype=np.int32)
            weights = np.ascontiguousarray(archive["weights"], dtype=np.int64)
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise JobError(f"{name}: not a graph archive (indptr, indices, weights): {error}") from error
    node_count = indptr.shape[0] - 1
    if (
        node_count < 1
        or indptr[0] != 0
        or indptr[-1] != indices.shape[0]
        or weights.shape != indices.shape
        or bool(np.any(np.diff(indptr) < 0))
        or (indices.shape[0] and (int(indices.min()) < 0 or int(indices.max()) >= node_count))
        or (weights.shape[0] and int(weights.min()) < 0)
    ):
        raise JobError(f"{name}: inconsistent graph archive (CSR arrays do not fit together)")
    # The leader checked this bound; checking it again keeps the kernel exact on any archive.
    check_distance_bound(int(node_count), int(weights.max()) if weights.shape[0] else 0, name)
    return Graph(indptr=indptr, indices=indices, weights=weights)
