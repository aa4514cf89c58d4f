"""The numba kernels of :mod:`batch_fanout_job.hierarchy`: contraction (witness searches, lazy
priority updates) and the PHAST sweep. Kept apart so that the leader and the shortest-path child import
numba only when they build or query a hierarchy."""

from __future__ import annotations

import numpy as np
from numba import njit

INFINITY = np.iinfo(np.int64).max
_NEVER_SEEN = -1
_SETTLED = -2


# --- an indexed 4-ary min-heap over node ids (keys in the heap, positions in ``where``) ------------


@njit(cache=True, nogil=True)
def _heap_push_or_decrease(heap_key, heap_node, where, size, node, key):  # noqa: PLR0917
    pos = where[node]
    if pos < 0:
        pos = size
        size += 1
    while pos > 0:
        parent = (pos - 1) >> 2
        if heap_key[parent] <= key:
            break
        heap_key[pos] = heap_key[parent]
        heap_node[pos] = heap_node[parent]
        where[heap_node[pos]] = pos
        pos = parent
    heap_key[pos] = key
    heap_node[pos] = node
    where[node] = pos
    return size


@njit(cache=True, nogil=True)
def _heap_pop(heap_key, heap_node, where, size):
    """Remove the root (the caller read it) and mark it settled; return the new size."""
    where[heap_node[0]] = _SETTLED
    size -= 1
    if size == 0:
        return 0
    last_key = heap_key[size]
    last_node = heap_node[size]
    pos = 0
    while True:
        child = 4 * pos + 1
        if child >= size:
            break
        best = child
        best_key = heap_key[child]
        for other in range(child + 1, min(child + 4, size)):
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
    return size


# --- contraction --------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _witness_search(  # noqa: PLR0917
    source, skip, limit, settled_limit, out_first, out_next, e_head, e_weight, contracted,
    dist, heap_key, heap_node, where, touched, target, stamp, target_count,
):  # fmt: skip
    """Dijkstra from ``source`` over the remaining graph without ``skip``, up to distance ``limit``,
    ``settled_limit`` settled nodes or the last of the ``target_count`` nodes marked
    ``target[node] == stamp[0]``. Leaves ``dist`` set on the ``touched`` nodes (returned count);
    the caller resets them."""
    dist[source] = 0
    touched[0] = source
    touched_count = 1
    size = _heap_push_or_decrease(heap_key, heap_node, where, 0, source, 0)
    settled = 0
    while size > 0:
        u = heap_node[0]
        d = heap_key[0]
        if d > limit or settled >= settled_limit:
            break
        size = _heap_pop(heap_key, heap_node, where, size)
        settled += 1
        if target[u] == stamp[0]:
            target_count -= 1
            if target_count == 0:
                break
        previous = -1
        arc = out_first[u]
        while arc >= 0:
            v = e_head[arc]
            following = out_next[arc]
            if contracted[v]:
                # A dead arc: unlink it here, where it is found (see _prune).
                if previous < 0:
                    out_first[u] = following
                else:
                    out_next[previous] = following
                arc = following
                continue
            previous = arc
            if v != skip:
                candidate = d + e_weight[arc]
                if candidate < dist[v]:
                    if dist[v] == INFINITY:
                        touched[touched_count] = v
                        touched_count += 1
                    dist[v] = candidate
                    size = _heap_push_or_decrease(heap_key, heap_node, where, size, v, candidate)
            arc = following
    # Whatever is left in the heap keeps its tentative distance: an upper bound of a real path.
    for i in range(touched_count):
        where[touched[i]] = _NEVER_SEEN
    return touched_count


@njit(cache=True, nogil=True)
def _prune(v, out_first, out_next, in_first, in_next, e_tail, e_head, contracted):  # noqa: PLR0917
    """Unlink the arcs of ``v`` whose other end is contracted: they stay in the arc arrays (they are
    arcs of the hierarchy) but would make every later scan of ``v``'s lists longer."""
    previous = -1
    arc = out_first[v]
    while arc >= 0:
        following = out_next[arc]
        if contracted[e_head[arc]]:
            if previous < 0:
                out_first[v] = following
            else:
                out_next[previous] = following
        else:
            previous = arc
        arc = following
    previous = -1
    arc = in_first[v]
    while arc >= 0:
        following = in_next[arc]
        if contracted[e_tail[arc]]:
            if previous < 0:
                in_first[v] = following
            else:
                in_next[previous] = following
        else:
            previous = arc
        arc = following


@njit(cache=True, nogil=True)
def _find_arc(u, w, out_first, out_next, e_head):
    arc = out_first[u]
    while arc >= 0:
        if e_head[arc] == w:
            return arc
        arc = out_next[arc]
    return -1


@njit(cache=True, nogil=True)
def _contract_node(  # noqa: PLR0917
    v, apply, settled_limit, out_first, out_next, in_first, in_next, e_tail, e_head, e_weight,
    arc_count, contracted, dist, heap_key, heap_node, where, touched, target, stamp,
):  # fmt: skip
    """Shortcuts that contracting ``v`` needs: counted, and added when ``apply`` (the caller made
    room for in-degree x out-degree more arcs). Returns (shortcuts, live arcs of v, new arc count)."""
    _prune(v, out_first, out_next, in_first, in_next, e_tail, e_head, contracted)
    shortcuts = 0
    live_arcs = 0
    out_arc = out_first[v]
    while out_arc >= 0:
        if not contracted[e_head[out_arc]]:
            live_arcs += 1
        out_arc = out_next[out_arc]
    in_arc = in_first[v]
    while in_arc >= 0:
        u = e_tail[in_arc]
        if contracted[u]:
            in_arc = in_next[in_arc]
            continue
        live_arcs += 1
        first_leg = e_weight[in_arc]
        limit = -1
        stamp[0] += 1
        target_count = 0
        out_arc = out_first[v]
        while out_arc >= 0:
            w = e_head[out_arc]
            if not contracted[w] and w != u:
                limit = max(limit, first_leg + e_weight[out_arc])
                if target[w] != stamp[0]:
                    target[w] = stamp[0]
                    target_count += 1
            out_arc = out_next[out_arc]
        if limit >= 0:
            touched_count = _witness_search(
                u, v, limit, settled_limit, out_first, out_next, e_head, e_weight, contracted,
                dist, heap_key, heap_node, where, touched, target, stamp, target_count,
            )  # fmt: skip
            out_arc = out_first[v]
            while out_arc >= 0:
                w = e_head[out_arc]
                through = first_leg + e_weight[out_arc]
                if not contracted[w] and w != u and dist[w] > through:
                    shortcuts += 1
                    if apply:
                        existing = _find_arc(u, w, out_first, out_next, e_head)
                        if existing >= 0:
                            e_weight[existing] = min(e_weight[existing], through)
                        else:
                            e_tail[arc_count] = u
                            e_head[arc_count] = w
                            e_weight[arc_count] = through
                            out_next[arc_count] = out_first[u]
                            out_first[u] = arc_count
                            in_next[arc_count] = in_first[w]
                            in_first[w] = arc_count
                            arc_count += 1
                out_arc = out_next[out_arc]
            for i in range(touched_count):
                dist[touched[i]] = INFINITY
        in_arc = in_next[in_arc]
    return shortcuts, live_arcs, arc_count


@njit(cache=True, nogil=True)
def _live_degrees(v, out_first, out_next, in_first, in_next, e_tail, e_head, contracted):  # noqa: PLR0917
    ins = 0
    outs = 0
    arc = out_first[v]
    while arc >= 0:
        if not contracted[e_head[arc]]:
            outs += 1
        arc = out_next[arc]
    arc = in_first[v]
    while arc >= 0:
        if not contracted[e_tail[arc]]:
            ins += 1
        arc = in_next[arc]
    return ins, outs


@njit(cache=True, nogil=True)
def _priority(shortcuts, live_arcs, deleted_neighbours, level):
    # Edge difference keeps the hierarchy small; deleted neighbours and level spread the
    # contraction evenly over the graph (as in Geisberger et al.'s CH), which keeps searches short.
    return 2 * (shortcuts - live_arcs) + deleted_neighbours + level


@njit(cache=True, nogil=True)
def contract_all(node_count, tails, heads, weights, witness_limit, simulation_limit):  # noqa: PLR0917
    arc_capacity = max(16, 2 * tails.shape[0])
    e_tail = np.empty(arc_capacity, dtype=np.int32)
    e_head = np.empty(arc_capacity, dtype=np.int32)
    e_weight = np.empty(arc_capacity, dtype=np.int64)
    out_next = np.empty(arc_capacity, dtype=np.int32)
    in_next = np.empty(arc_capacity, dtype=np.int32)
    out_first = np.full(node_count, -1, dtype=np.int32)
    in_first = np.full(node_count, -1, dtype=np.int32)
    arc_count = 0
    for k in range(tails.shape[0]):
        e_tail[k] = tails[k]
        e_head[k] = heads[k]
        e_weight[k] = weights[k]
        out_next[k] = out_first[tails[k]]
        out_first[tails[k]] = k
        in_next[k] = in_first[heads[k]]
        in_first[heads[k]] = k
        arc_count += 1
    contracted = np.zeros(node_count, dtype=np.bool_)
    dist = np.full(node_count, INFINITY, dtype=np.int64)
    heap_key = np.empty(node_count, dtype=np.int64)
    heap_node = np.empty(node_count, dtype=np.int32)
    where = np.full(node_count, _NEVER_SEEN, dtype=np.int32)
    touched = np.empty(node_count, dtype=np.int32)
    target = np.zeros(node_count, dtype=np.int64)
    stamp = np.zeros(1, dtype=np.int64)
    deleted = np.zeros(node_count, dtype=np.int64)
    level = np.zeros(node_count, dtype=np.int64)
    # The queue of nodes by priority: a second indexed heap.
    queue_key = np.empty(node_count, dtype=np.int64)
    queue_node = np.empty(node_count, dtype=np.int32)
    queue_where = np.full(node_count, _NEVER_SEEN, dtype=np.int32)
    queue_size = 0
    for v in range(node_count):
        shortcuts, live, _ = _contract_node(
            v, False, simulation_limit, out_first, out_next, in_first, in_next, e_tail, e_head,
            e_weight, arc_count, contracted, dist, heap_key, heap_node, where, touched, target, stamp,
        )  # fmt: skip
        queue_size = _heap_push_or_decrease(
            queue_key, queue_node, queue_where, queue_size, v, _priority(shortcuts, live, 0, 0)
        )
    rank = np.empty(node_count, dtype=np.int32)
    next_rank = 0
    while queue_size > 0:
        v = queue_node[0]
        # Lazy update: recompute the top's priority; contract it only if it is still the smallest.
        shortcuts, live, _ = _contract_node(
            v, False, simulation_limit, out_first, out_next, in_first, in_next, e_tail, e_head,
            e_weight, arc_count, contracted, dist, heap_key, heap_node, where, touched, target, stamp,
        )  # fmt: skip
        key = _priority(shortcuts, live, deleted[v], level[v])
        queue_size = _heap_pop(queue_key, queue_node, queue_where, queue_size)
        if queue_size > 0 and key > queue_key[0]:
            queue_where[v] = _NEVER_SEEN
            queue_size = _heap_push_or_decrease(queue_key, queue_node, queue_where, queue_size, v, key)
            continue
        ins, outs = _live_degrees(v, out_first, out_next, in_first, in_next, e_tail, e_head, contracted)
        needed = arc_count + ins * outs
        if needed > arc_capacity:
            arc_capacity = max(2 * arc_capacity, needed)
            e_tail = _grown(e_tail, arc_capacity)
            e_head = _grown(e_head, arc_capacity)
            e_weight = _grown(e_weight, arc_capacity)
            out_next = _grown(out_next, arc_capacity)
            in_next = _grown(in_next, arc_capacity)
        _, _, arc_count = _contract_node(
            v, True, witness_limit, out_first, out_next, in_first, in_next, e_tail, e_head,
            e_weight, arc_count, contracted, dist, heap_key, heap_node, where, touched, target, stamp,
        )  # fmt: skip
        contracted[v] = True
        rank[v] = next_rank
        next_rank += 1
        # Neighbours: one more deleted neighbour, a level above v. Their priorities are recomputed
        # lazily when they reach the top of the queue: simulating every neighbour's contraction
        # here made the build three times slower for a hierarchy only a tenth smaller.
        for side in range(2):
            arc = out_first[v] if side == 0 else in_first[v]
            while arc >= 0:
                x = e_head[arc] if side == 0 else e_tail[arc]
                if not contracted[x]:
                    deleted[x] += 1
                    level[x] = max(level[x], level[v] + 1)
                arc = out_next[arc] if side == 0 else in_next[arc]
    return rank, e_tail[:arc_count].copy(), e_head[:arc_count].copy(), e_weight[:arc_count].copy()


@njit(cache=True, nogil=True)
def _grown(values, capacity):
    result = np.empty(capacity, dtype=values.dtype)
    result[: values.shape[0]] = values
    return result


# --- PHAST queries ------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def phast_sweep(  # noqa: PLR0917
    up_indptr, up_heads, up_weights, down_indptr, down_tails, down_weights, sources, width, dist,
    heap_key, heap_node, where, touched, reachable, distance_sum, eccentricity,
):  # fmt: skip
    """Distances from ``width`` source positions at once into ``dist[position * width + j]``, and
    their per-origin figures."""
    node_count = up_indptr.shape[0] - 1
    dist[:] = INFINITY
    for j in range(width):
        # Upward search: Dijkstra over the arcs to higher ranks only (a few hundred nodes).
        source = sources[j]
        dist[source * width + j] = 0
        touched[0] = source
        touched_count = 1
        size = _heap_push_or_decrease(heap_key, heap_node, where, 0, source, 0)
        while size > 0:
            u = heap_node[0]
            d = heap_key[0]
            size = _heap_pop(heap_key, heap_node, where, size)
            for arc in range(up_indptr[u], up_indptr[u + 1]):
                v = up_heads[arc]
                candidate = d + up_weights[arc]
                if candidate < dist[v * width + j]:
                    if where[v] == _NEVER_SEEN:
                        touched[touched_count] = v
                        touched_count += 1
                    dist[v * width + j] = candidate
                    size = _heap_push_or_decrease(heap_key, heap_node, where, size, v, candidate)
        for i in range(touched_count):
            where[touched[i]] = _NEVER_SEEN
    # The sweep: every node in descending rank pulls from the higher-ranked nodes it has arcs from,
    # which are final by then.
    for j in range(width):
        reachable[j] = 0
        distance_sum[j] = 0
        eccentricity[j] = 0
    for v in range(node_count):
        base = v * width
        for arc in range(down_indptr[v], down_indptr[v + 1]):
            tail = down_tails[arc] * width
            weight = down_weights[arc]
            for j in range(width):
                from_tail = dist[tail + j]
                if from_tail != INFINITY and from_tail + weight < dist[base + j]:
                    dist[base + j] = from_tail + weight
        for j in range(width):
            value = dist[base + j]
            if value != INFINITY:
                reachable[j] += 1
                distance_sum[j] += value
                eccentricity[j] = max(eccentricity[j], value)
