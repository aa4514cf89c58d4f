"""Single-source shortest paths over a CSR graph: Dijkstra with an indexed 4-ary heap, compiled by
numba (``cache=True`` so that a short job pays the compile once per machine, or never when the image
was warmed at build time).

Distances are int64; unreachable nodes hold :data:`UNREACHABLE` inside the kernel. Memory is a few
arrays of the node count per call, whatever the number of origins: never the all-pairs matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

UNREACHABLE = np.iinfo(np.int64).max
_NEVER_SEEN = -1
_SETTLED = -2


@njit(cache=True, nogil=True)
def _dijkstra(indptr, indices, weights, source, dist, pred, heap_key, heap_node, where, record_pred):  # noqa: PLR0917
    node_count = dist.shape[0]
    infinity = np.iinfo(np.int64).max
    for node in range(node_count):
        dist[node] = infinity
        where[node] = _NEVER_SEEN
    if record_pred:
        for node in range(node_count):
            pred[node] = -1
    dist[source] = 0
    heap_key[0] = 0
    heap_node[0] = source
    where[source] = 0
    size = 1
    while size > 0:
        u = heap_node[0]
        d = heap_key[0]
        where[u] = _SETTLED
        size -= 1
        if size > 0:
            # Sift the last entry down from the root; keys live in the heap itself (no indirection).
            last_key = heap_key[size]
            last_node = heap_node[size]
            pos = 0
            while True:
                child = 4 * pos + 1
                if child >= size:
                    break
                best = child
                best_key = heap_key[child]
                end = min(child + 4, size)
                for other in range(child + 1, end):
                    if heap_key[other] < best_key:
                        best_key = heap_key[other]
                        best = other
                if best_key >= last_key:
                    break
                heap_key[pos] = best_key
                heap_node[pos] = heap_node[best]
                where[heap_node[pos]] = pos
                pos = best
            heap_key[pos] = last_key
            heap_node[pos] = last_node
            where[last_node] = pos
        for arc in range(indptr[u], indptr[u + 1]):
            v = indices[arc]
            candidate = d + weights[arc]
            if candidate < dist[v]:
                dist[v] = candidate
                if record_pred:
                    pred[v] = u
                pos = where[v]
                if pos == _NEVER_SEEN:
                    pos = size
                    size += 1
                # Decrease-key (or insert): sift up.
                while pos > 0:
                    parent = (pos - 1) >> 2
                    parent_key = heap_key[parent]
                    if parent_key <= candidate:
                        break
                    heap_key[pos] = parent_key
                    heap_node[pos] = heap_node[parent]
                    where[heap_node[pos]] = pos
                    pos = parent
                heap_key[pos] = candidate
                heap_node[pos] = v
                where[v] = pos


@njit(cache=True, nogil=True)
def _summaries(indptr, indices, weights, origins, reachable, distance_sum, eccentricity):  # noqa: PLR0917
    node_count = indptr.shape[0] - 1
    infinity = np.iinfo(np.int64).max
    dist = np.empty(node_count, dtype=np.int64)
    pred = np.empty(1, dtype=np.int32)
    heap_key = np.empty(node_count, dtype=np.int64)
    heap_node = np.empty(node_count, dtype=np.int32)
    where = np.empty(node_count, dtype=np.int32)
    for k in range(origins.shape[0]):
        _dijkstra(indptr, indices, weights, origins[k], dist, pred, heap_key, heap_node, where, False)
        count = 0
        total = 0
        farthest = 0
        for node in range(node_count):
            value = dist[node]
            if value != infinity:
                count += 1
                total += value
                farthest = max(farthest, value)
        reachable[k] = count
        distance_sum[k] = total
        eccentricity[k] = farthest


@dataclass(frozen=True)
class OriginSummaries:
    """Per-origin figures of one shard, aligned with ``origins`` (0-based node indices).

    ``reachable`` counts the origin itself; ``eccentricity`` is the largest finite distance.
    """

    origins: np.ndarray
    reachable: np.ndarray
    distance_sum: np.ndarray
    eccentricity: np.ndarray

    def closeness(self, node_count: int) -> np.ndarray:
        """Closeness from each origin over the nodes it reaches, scaled by the share of the graph it
        reaches (Wasserman-Faust; networkx's ``closeness_centrality`` on the reversed graph)."""
        others = (self.reachable - 1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(self.distance_sum > 0, others / self.distance_sum, 0.0)
        if node_count > 1:
            value = value * (others / (node_count - 1))
        return value


def _as_csr_arrays(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    return (
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(indices, dtype=np.int32),
        np.ascontiguousarray(weights, dtype=np.int64),
    )


def summarize_origins(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, origins: np.ndarray
) -> OriginSummaries:
    """Run Dijkstra from every origin and keep only its summary figures (memory O(nodes)).

    :param indptr: CSR row pointers (``int64[n + 1]``).
    :param indices: CSR arc heads (0-based).
    :param weights: non-negative integer arc costs.
    :param origins: 0-based origin nodes.
    """
    arrays = _as_csr_arrays(indptr, indices, weights)
    origins = np.ascontiguousarray(origins, dtype=np.int64)
    count = origins.shape[0]
    reachable = np.zeros(count, dtype=np.int64)
    distance_sum = np.zeros(count, dtype=np.int64)
    eccentricity = np.zeros(count, dtype=np.int64)
    _summaries(*arrays, origins, reachable, distance_sum, eccentricity)  # type: ignore[call-arg]
    return OriginSummaries(origins, reachable, distance_sum, eccentricity)


class SingleSource:
    """Reusable workspace for full single-source runs (distances and predecessors) on one graph.

    :param indptr: CSR row pointers.
    :param indices: CSR arc heads (0-based).
    :param weights: non-negative integer arc costs.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> None:
        self._arrays = _as_csr_arrays(indptr, indices, weights)
        node_count = self._arrays[0].shape[0] - 1
        self._heap_key = np.empty(node_count, dtype=np.int64)
        self._heap_node = np.empty(node_count, dtype=np.int32)
        self._where = np.empty(node_count, dtype=np.int32)
        self._unused_pred = np.empty(1, dtype=np.int32)

    def distances(self, source: int, with_predecessors: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Distances from ``source`` (:data:`UNREACHABLE` where none), and predecessors if asked
        (-1 for the source and unreachable nodes).

        :param source: 0-based source node.
        :param with_predecessors: also return the shortest-path tree.
        """
        node_count = self._heap_key.shape[0]
        dist = np.empty(node_count, dtype=np.int64)
        pred = np.empty(node_count, dtype=np.int32) if with_predecessors else self._unused_pred
        _dijkstra(  # type: ignore[call-arg]
            *self._arrays,
            np.int64(source),
            dist,
            pred,
            self._heap_key,
            self._heap_node,
            self._where,
            with_predecessors,
        )
        return dist, (pred if with_predecessors else None)


def path_to(predecessors: np.ndarray, source: int, target: int) -> list[int]:
    """The nodes of the shortest path from ``source`` to ``target`` (0-based), empty if unreachable.

    :param predecessors: the tree from :meth:`SingleSource.distances`.
    """
    if target == source:
        return [source]
    if predecessors[target] < 0:
        return []
    nodes = [target]
    while nodes[-1] != source:
        nodes.append(int(predecessors[nodes[-1]]))
    nodes.reverse()
    return nodes


def warm_up() -> None:
    """Compile (or load from the cache) every kernel specialization the job uses, on a tiny graph."""
    indptr = np.array([0, 1, 1], dtype=np.int64)
    indices = np.array([1], dtype=np.int32)
    weights = np.array([1], dtype=np.int64)
    summarize_origins(indptr, indices, weights, np.array([0], dtype=np.int64))
    SingleSource(indptr, indices, weights).distances(0, with_predecessors=True)
    SingleSource(indptr, indices, weights).distances(0, with_predecessors=False)
