"""Exact one-to-all shortest paths past Dijkstra: a contraction hierarchy built once per graph, and
PHAST queries over it (Delling, Goldberg, Nowatzyk, Werneck, "PHAST: Hardware-accelerated shortest
path trees", 2011).

The leader builds the hierarchy once (:func:`build_hierarchy`) and writes it next to the graph
(:func:`hierarchy_to_bytes`, ``graph/hierarchy.npz``); every shortest-path child loads it and answers
each origin with an upward Dijkstra search in the hierarchy followed by one linear sweep over the
nodes in descending rank (:meth:`Phast.summaries`), several origins per sweep. Distances are exactly
Dijkstra's: contraction adds a shortcut ``u -> w`` for ``u -> v -> w`` unless a witness path no
longer than it avoids ``v``, so distances among the nodes not yet contracted never change; a witness
search that gives up early only adds a shortcut that was not needed.

Nodes are stored by sweep position (``n - 1 - rank``): the sweep reads and writes the distance array
front to back, and every arc it pulls from comes from an earlier position.

Memory of a query: the hierarchy (about two arcs per graph arc here) plus ``origins per sweep``
distance arrays of the node count, whatever the number of origins; never the all-pairs matrix.
Why not a library: measured here in December 2026 on the 512x512 grid, RoutingKit's CCH gave exact
one-to-all distances, but slower than this (``routingkit-cch`` 0.1.4 ``CCHOneToMany``: 70-155 ms per
origin with its degree order, 22-26 ms with an inertial order from grid coordinates that a DIMACS
``.gr`` does not have, plus 10 ms to turn its list into an array; ``pyroutingkit`` 0.2.1
many-to-many: 18-26 ms), where PHAST here took 4-8 ms (4 or 1 origins per sweep) minutes later
under a similar load; ``fast-paths`` (point-to-point only) has no wheel, and ``pandana`` has no
one-to-all query.

Building needs numba (:mod:`batch_fanout_job.hierarchy_kernels`, imported only then; the
shortest-path and leader images install it); querying needs it only where the sweep was not compiled
ahead of time (:mod:`batch_fanout_job.compiled_kernels`); deciding and reading the file never do.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from batch_fanout_job.errors import JobError

INFINITY = np.iinfo(np.int64).max
# Origins answered by one sweep: its arcs are read once for all of them. On the 512x512 grid four
# per sweep took 0.55x the time per origin of one per sweep; eight or sixteen gained nothing more.
SWEEP_WIDTH = 4
# Nodes a witness search settles before it gives up (and the shortcut is kept): larger finds more
# witnesses (fewer shortcuts, faster queries) for a slower build.
WITNESS_SETTLED_LIMIT = 400
SIMULATION_SETTLED_LIMIT = 60
FORMAT_VERSION = 1
# A hierarchy is built when the largest shard has at least this many origins. The leader builds it
# before any child starts, so it is judged on one child's origins (the run's critical path): the
# build cost what PHAST saved over Dijkstra on 640 origins on the 512x512 grid and 940-1,460 on
# smaller graphs (rome99, a 96x96 grid; benchmarks/shortest_path.py measures it).
BREAK_EVEN_ORIGINS = 1000

# --- the hierarchy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hierarchy:
    """A contraction hierarchy in sweep order (position ``p`` holds the node of rank ``n - 1 - p``).

    :param position: ``int32[n]``, the sweep position of each node.
    :param up_indptr: CSR over positions of the upward arcs (to earlier positions, higher rank).
    :param up_heads: ``int32``, the head position of each upward arc.
    :param up_weights: ``int64``, its cost.
    :param down_indptr: CSR over positions of the arcs *into* each node from earlier positions.
    :param down_tails: ``int32``, the tail position of each such arc.
    :param down_weights: ``int64``, its cost.
    :param graph_arcs: arcs of the graph it was built from (cheapest per pair, no loops).
    """

    position: np.ndarray
    up_indptr: np.ndarray
    up_heads: np.ndarray
    up_weights: np.ndarray
    down_indptr: np.ndarray
    down_tails: np.ndarray
    down_weights: np.ndarray
    graph_arcs: int

    @property
    def node_count(self) -> int:
        return int(self.position.shape[0])

    @property
    def arc_count(self) -> int:
        return int(self.up_heads.shape[0] + self.down_tails.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(
            int(array.nbytes)
            for array in (
                self.position, self.up_indptr, self.up_heads, self.up_weights,
                self.down_indptr, self.down_tails, self.down_weights,
            )
        )  # fmt: skip


def _csr(rows: np.ndarray, columns: np.ndarray, weights: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    order = np.lexsort((columns, rows))
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=count), out=indptr[1:])
    return (
        indptr,
        np.ascontiguousarray(columns[order], dtype=np.int32),
        np.ascontiguousarray(weights[order], dtype=np.int64),
    )


def build_hierarchy(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    witness_limit: int = WITNESS_SETTLED_LIMIT,
) -> Hierarchy:
    """Contract every node of the graph, cheapest first by edge difference.

    :param indptr: CSR row pointers (``int64[n + 1]``).
    :param indices: CSR arc heads (0-based); parallel arcs and self loops are allowed.
    :param weights: non-negative integer arc costs.
    :param witness_limit: nodes a witness search settles before it keeps the shortcut.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    node_count = int(indptr.shape[0] - 1)
    tails = np.repeat(np.arange(node_count, dtype=np.int64), np.diff(indptr))
    heads = np.asarray(indices, dtype=np.int64)
    costs = np.asarray(weights, dtype=np.int64)
    if costs.shape[0] and int(costs.min()) < 0:
        raise JobError("contraction hierarchy: arc costs must be non-negative")
    max_cost = int(costs.max()) if costs.shape[0] else 0
    if not exact_in_int64(node_count, max_cost):
        raise JobError(
            f"contraction hierarchy: {node_count} nodes with costs up to {max_cost} could overflow int64 "
            "(2 x nodes x max cost must stay below 2^63 - 1); run Dijkstra instead"
        )
    # The cheapest arc per (tail, head), without loops: neither changes a distance.
    keep = tails != heads
    tails, heads, costs = tails[keep], heads[keep], costs[keep]
    order = np.lexsort((costs, heads, tails))
    tails, heads, costs = tails[order], heads[order], costs[order]
    first = np.ones(tails.shape[0], dtype=bool)
    first[1:] = (tails[1:] != tails[:-1]) | (heads[1:] != heads[:-1])
    tails, heads, costs = tails[first], heads[first], costs[first]
    from batch_fanout_job.hierarchy_kernels import contract_all

    rank, arc_tails, arc_heads, arc_weights = contract_all(
        node_count,
        tails.astype(np.int32),
        heads.astype(np.int32),
        costs,
        witness_limit,
        min(SIMULATION_SETTLED_LIMIT, witness_limit),
    )
    position = (node_count - 1 - rank).astype(np.int32)
    tail_position = position[arc_tails].astype(np.int64)
    head_position = position[arc_heads].astype(np.int64)
    up = tail_position > head_position
    up_indptr, up_heads, up_weights = _csr(tail_position[up], head_position[up], arc_weights[up], node_count)
    down = ~up
    down_indptr, down_tails, down_weights = _csr(
        head_position[down], tail_position[down], arc_weights[down], node_count
    )
    return Hierarchy(
        position, up_indptr, up_heads, up_weights, down_indptr, down_tails, down_weights, int(tails.shape[0])
    )


def _phast_sweep_kernel(kernels: str) -> tuple[Callable[..., None], str]:
    """The PHAST sweep to run and its name (``compiled`` or ``jit``)."""
    if kernels not in ("auto", "jit"):
        raise ValueError(f"kernels {kernels!r}: expected auto or jit")
    if kernels == "auto":
        from batch_fanout_job.compiled_kernels import load

        compiled = load()
        if compiled is not None:
            return compiled.phast_sweep, "compiled"
    from batch_fanout_job.hierarchy_kernels import phast_sweep

    return phast_sweep, "jit"


class Phast:
    """Reusable workspace for PHAST queries over one hierarchy.

    :param hierarchy: the graph's contraction hierarchy.
    :param width: origins per sweep (the last sweep of a run may hold fewer).
    :param kernels: ``auto``: the sweep compiled ahead of time when it was built for this kernel
        source (:mod:`batch_fanout_job.compiled_kernels`: no numba import), else numba's JIT; ``jit``:
        numba's JIT. Both give the same distances; :attr:`kernels` says which one runs.
    """

    def __init__(self, hierarchy: Hierarchy, width: int = SWEEP_WIDTH, kernels: str = "auto") -> None:
        if width < 1:
            raise ValueError(f"width {width}: at least one origin per sweep")
        self.hierarchy = hierarchy
        self.width = width
        self._phast_sweep, self.kernels = _phast_sweep_kernel(kernels)
        # numba's JIT specialises on its arguments' types; the compiled sweep takes them on trust (a
        # wrong one crashes it instead of raising). So the arrays it reads are kept in the exact types
        # of its signature (no copy when they already are, as the archive reader and the build give).
        h = hierarchy
        self._arcs = tuple(
            np.ascontiguousarray(array, dtype=dtype)
            for array, dtype in (
                (h.up_indptr, np.int64), (h.up_heads, np.int32), (h.up_weights, np.int64),
                (h.down_indptr, np.int64), (h.down_tails, np.int32), (h.down_weights, np.int64),
            )
        )  # fmt: skip
        count = hierarchy.node_count
        self._dist = np.empty(count * width, dtype=np.int64)
        self._heap_key = np.empty(count, dtype=np.int64)
        self._heap_node = np.empty(count, dtype=np.int32)
        # -1: not in the upward search's heap (the kernels' "never seen").
        self._where = np.full(count, -1, dtype=np.int32)
        self._touched = np.empty(count, dtype=np.int32)

    def _sweep(self, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One sweep for up to ``width`` origins (0-based nodes); returns the distance block by
        position (``[n, len(origins)]``) and the figures."""
        h = self.hierarchy
        width = int(origins.shape[0])
        if width > self.width:
            raise ValueError(f"{width} origins for a sweep of width {self.width}")
        if origins.size and (int(origins.min()) < 0 or int(origins.max()) >= h.node_count):
            raise ValueError(f"origin not a node of the hierarchy (0..{h.node_count - 1})")
        dist = self._dist[: h.node_count * width]
        reachable = np.empty(width, dtype=np.int64)
        distance_sum = np.empty(width, dtype=np.int64)
        eccentricity = np.empty(width, dtype=np.int64)
        self._phast_sweep(
            *self._arcs, h.position[origins].astype(np.int64), width, dist, self._heap_key,
            self._heap_node, self._where, self._touched, reachable, distance_sum, eccentricity,
        )  # fmt: skip
        return dist.reshape(h.node_count, width), reachable, distance_sum, eccentricity

    def summaries(self, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reachable counts (the origin included), distance sums and eccentricities per origin.

        :param origins: 0-based origin nodes.
        """
        origins = np.asarray(origins, dtype=np.int64)
        count = origins.shape[0]
        reachable = np.zeros(count, dtype=np.int64)
        distance_sum = np.zeros(count, dtype=np.int64)
        eccentricity = np.zeros(count, dtype=np.int64)
        for start in range(0, count, self.width):
            chunk = origins[start : start + self.width]
            _, r, s, e = self._sweep(chunk)
            end = start + chunk.shape[0]
            reachable[start:end], distance_sum[start:end], eccentricity[start:end] = r, s, e
        return reachable, distance_sum, eccentricity

    def distances(self, origin: int) -> np.ndarray:
        """The distance row of one origin by node (:data:`INFINITY` where unreachable).

        :param origin: 0-based origin node.
        """
        block, _, _, _ = self._sweep(np.array([origin], dtype=np.int64))
        return block[self.hierarchy.position, 0].copy()


# Peak bytes the build adds per graph arc (its arc pool, the hierarchy's arrays and their archive),
# rounded up: measured 230 on the 512x512 grid (the leader's peak rose from 164 to 325 MiB).
BUILD_BYTES_PER_ARC = 256


def build_memory_mib(arc_count: int) -> int:
    """The memory (MiB, rounded up) that building the hierarchy of a graph of ``arc_count`` arcs adds."""
    return -(-arc_count * BUILD_BYTES_PER_ARC // (1024 * 1024))


def exact_in_int64(node_count: int, max_cost: int) -> bool:
    """Whether every sum the build and the sweep form stays below int64's largest value.

    A shortcut costs what a shortest path does, at most ``(nodes - 1) x max cost``, and the sweep adds
    one to a distance no larger: twice what Dijkstra needs (``nodes x max cost``).

    :param node_count: nodes of the graph.
    :param max_cost: its largest arc cost.
    """
    return 2 * node_count * max(max_cost, 1) < INFINITY


def hierarchy_pays(largest_shard: int, node_count: int, max_cost: int) -> bool:
    """Whether to build the hierarchy for a run: its largest shard repays the build, and its sums
    stay exact (else the children run Dijkstra, whose bound is half as tight).

    :param largest_shard: origins of the run's largest shard.
    :param node_count: nodes of the graph.
    :param max_cost: its largest arc cost.
    """
    return largest_shard >= BREAK_EVEN_ORIGINS and exact_in_int64(node_count, max_cost)


# --- the file next to graph/graph.npz -----------------------------------------------------------


def hierarchy_to_bytes(hierarchy: Hierarchy) -> bytes:
    """Serialize to ``graph/hierarchy.npz`` (uncompressed: children load it fast)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        version=np.array([FORMAT_VERSION]),
        graph_arcs=np.array([hierarchy.graph_arcs]),
        position=hierarchy.position,
        up_indptr=hierarchy.up_indptr,
        up_heads=hierarchy.up_heads,
        up_weights=hierarchy.up_weights,
        down_indptr=hierarchy.down_indptr,
        down_tails=hierarchy.down_tails,
        down_weights=hierarchy.down_weights,
    )
    return buffer.getvalue()


def hierarchy_from_bytes(data: bytes, name: str, node_count: int) -> Hierarchy:
    """Load a hierarchy written by :func:`hierarchy_to_bytes` for a graph of ``node_count`` nodes.

    :raises JobError: naming the input when it is not such a file or does not fit the graph.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            version = int(archive["version"][0])
            if version != FORMAT_VERSION:
                raise JobError(f"{name}: hierarchy format {version}, this job reads {FORMAT_VERSION}")
            hierarchy = Hierarchy(
                position=np.ascontiguousarray(archive["position"], dtype=np.int32),
                up_indptr=np.ascontiguousarray(archive["up_indptr"], dtype=np.int64),
                up_heads=np.ascontiguousarray(archive["up_heads"], dtype=np.int32),
                up_weights=np.ascontiguousarray(archive["up_weights"], dtype=np.int64),
                down_indptr=np.ascontiguousarray(archive["down_indptr"], dtype=np.int64),
                down_tails=np.ascontiguousarray(archive["down_tails"], dtype=np.int32),
                down_weights=np.ascontiguousarray(archive["down_weights"], dtype=np.int64),
                graph_arcs=int(archive["graph_arcs"][0]),
            )
    except (OSError, ValueError, KeyError, EOFError, IndexError) as error:
        raise JobError(f"{name}: not a contraction hierarchy archive: {error}") from error
    n = hierarchy.node_count
    consistent = (
        n == node_count
        and np.array_equal(np.sort(hierarchy.position), np.arange(n))
        and hierarchy.up_indptr.shape == (n + 1,)
        and hierarchy.down_indptr.shape == (n + 1,)
        and int(hierarchy.up_indptr[-1]) == hierarchy.up_heads.shape[0] == hierarchy.up_weights.shape[0]
        and int(hierarchy.down_indptr[-1]) == hierarchy.down_tails.shape[0] == hierarchy.down_weights.shape[0]
    )
    if consistent:
        # Upward arcs lead to earlier positions, downward ones come from them: what the sweep needs.
        up_rows = np.repeat(np.arange(n), np.diff(hierarchy.up_indptr))
        down_rows = np.repeat(np.arange(n), np.diff(hierarchy.down_indptr))
        consistent = bool(
            np.all(hierarchy.up_heads < up_rows)
            and np.all(hierarchy.down_tails < down_rows)
            and np.all(hierarchy.up_weights >= 0)
            and np.all(hierarchy.down_weights >= 0)
        )
    if not consistent:
        raise JobError(f"{name}: the hierarchy does not fit the graph of {node_count} nodes")
    return hierarchy


def warm_up(build: bool = True, kernels: str = "auto") -> str:
    """Compile (or load from the cache) the kernels of the queries, and of the build when asked, on a
    tiny graph.

    :param build: also the contraction kernels (the leader's).
    :param kernels: the sweep to load, as :class:`Phast` takes it.
    :returns: which sweep runs (``compiled`` or ``jit``).
    """
    position = np.array([1, 0], dtype=np.int32)
    up_indptr = np.array([0, 0, 1], dtype=np.int64)
    down_indptr = np.array([0, 0, 1], dtype=np.int64)
    one = np.array([0], dtype=np.int32)
    weight = np.array([1], dtype=np.int64)
    hierarchy = Hierarchy(position, up_indptr, one, weight, down_indptr, one, weight, 1)
    if build:
        hierarchy = build_hierarchy(np.array([0, 1, 1]), np.array([1]), np.array([1]))
    phast = Phast(hierarchy, width=2, kernels=kernels)
    phast.summaries(np.array([0, 1]))
    return phast.kernels
