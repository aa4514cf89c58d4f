"""Shortest-path child: single-source shortest paths from every origin of one shard.

Child *i* (its logical index) loads ``graph/graph.npz`` once (and ``graph/hierarchy.npz``, the
contraction hierarchy, when the leader built one), computes shortest paths from each origin of shard
*i* of ``manifest.json`` (PHAST sweeps over the hierarchy, else Dijkstra) and writes
``shortest_paths/<i>.json``: per origin the reachable count (the origin included), the sum and the
maximum of the distances (eccentricity) and the closeness. For the origins named by ``--paths-for`` it
also writes their full distance rows and shortest-path trees (from Dijkstra) to
``shortest_paths/<i>.npz`` and prints paths as the classic demo did. Memory is bounded by the graph,
its hierarchy and the shard, never by the all-pairs matrix.

``--paths-for``: ``none``, or comma-separated ``ORIGIN`` (path to its farthest node) or
``ORIGIN:TARGET`` entries, 1-based node ids. Each child handles the entries whose origin is in its shard.

Run as AWS Batch runs it::

    AWS_BATCH_JOB_ARRAY_INDEX=0 RESULTS_URI=file:///tmp/results RUN_PREFIX=demo/run1 \\
        python -m shortest_path --paths-for 1,5:77
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from batch_fanout_job.compiled_kernels import kernel_choice
from batch_fanout_job.errors import BadInputError, JobError
from batch_fanout_job.graphs import Graph, graph_from_bytes
from batch_fanout_job.index import logical_index
from batch_fanout_job.plan import shard_origins
from batch_fanout_job.runtime import log_event, maybe_fail_once, parse_optional, run_cli
from batch_fanout_job.store import RunStore

if TYPE_CHECKING:
    from batch_fanout_job.hierarchy import Hierarchy

JOB = "shortest_path"
INT64_MAX = int(np.iinfo(np.int64).max)
# sssp_kernel.UNREACHABLE, without importing numba where the shard needs no Dijkstra.
UNREACHABLE = INT64_MAX
WORKLOAD = "shortest_path"
OUTPUT_FOLDER = "shortest_paths"


@dataclass(frozen=True)
class PathRequest:
    """A ``--paths-for`` entry: an origin and an optional target (1-based ids)."""

    origin: int
    target: int | None


def parse_paths_for(text: str | None, node_count: int) -> list[PathRequest]:
    """Parse ``--paths-for``.

    :raises BadInputError: naming an entry that is malformed or not a node of the graph.
    """
    if text is None:
        return []
    requests: list[PathRequest] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        pieces = entry.split(":")
        if len(pieces) > 2 or not all(piece.isdigit() for piece in pieces):
            raise BadInputError(f"--paths-for: {entry!r} is not ORIGIN or ORIGIN:TARGET (node ids)")
        for node in pieces:
            if not 1 <= int(node) <= node_count:
                raise BadInputError(f"--paths-for: {node} is not a node of the graph (ids 1..{node_count})")
        requests.append(PathRequest(int(pieces[0]), int(pieces[1]) if len(pieces) == 2 else None))
    return requests


def compact_rows(rows: np.ndarray) -> np.ndarray:
    """Distance rows in the smallest signed integer type that holds them, -1 for unreachable."""
    finite = rows[rows != UNREACHABLE]
    largest = int(finite.max()) if finite.size else 0
    dtype = next(t for t in (np.int16, np.int32, np.int64) if largest <= np.iinfo(t).max)
    return np.where(rows == UNREACHABLE, -1, rows).astype(dtype)


def exact_distance_sums(
    runner: Callable[[], Any],
    origins: np.ndarray,
    reachable: Sequence[int],
    eccentricity: Sequence[int],
    kernel_sums: np.ndarray,
) -> list[int]:
    """Each origin's sum of distances, exact whatever its size.

    The kernel adds distances in int64. The graph's bound (:func:`~batch_fanout_job.graphs.
    check_distance_bound`) keeps every distance exact, but a sum over many far nodes may still pass
    2^63 - 1 and wrap. The sum is at most ``(reachable - 1) x eccentricity``: where that fits, the
    kernel's sum is exact; elsewhere the row is summed again in two 32-bit halves, which cannot
    overflow for fewer than 2^31 nodes, and joined as a Python integer.

    :param runner: makes a :class:`sssp_kernel.SingleSource` on the graph (called only where a sum
        may have wrapped: most shards never load the Dijkstra kernel).
    :param origins: the shard's origins (1-based ids).
    :param reachable: the kernel's reachable counts (the origin included).
    :param eccentricity: the kernel's largest finite distance per origin.
    :param kernel_sums: the kernel's int64 sums.
    """
    sums: list[int] = []
    dijkstra = None
    for position, origin in enumerate(origins):
        if (reachable[position] - 1) * eccentricity[position] <= INT64_MAX:
            sums.append(int(kernel_sums[position]))
            continue
        dijkstra = dijkstra or runner()
        distances, _ = dijkstra.distances(int(origin) - 1)
        finite = distances[distances != UNREACHABLE]
        high = int(np.sum(finite >> 32, dtype=np.int64))
        low = int(np.sum(finite & 0xFFFFFFFF, dtype=np.int64))
        sums.append((high << 32) + low)
    return sums


def closeness_values(reachable: Sequence[int], distance_sum: Sequence[int], node_count: int) -> list[float]:
    """Closeness from each origin over the nodes it reaches, scaled by the share of the graph it
    reaches (Wasserman-Faust, as the kernel's ``OriginSummaries.closeness``), from exact sums: a
    Python integer divides into a float without overflow."""
    values: list[float] = []
    for count, total in zip(reachable, distance_sum, strict=True):
        others = count - 1
        value = others / total if total > 0 else 0.0
        if node_count > 1:
            value *= others / (node_count - 1)
        values.append(float(value))
    return values


def compute_shard(
    graph: Graph,
    origins: np.ndarray,
    requests: Sequence[PathRequest],
    hierarchy: Hierarchy | None = None,
    kernels: str = "auto",
) -> tuple[dict[str, Any], bytes | None]:
    """The shard's results and, when paths are asked for, the ``.npz`` of full rows.

    The per-origin figures come from PHAST over the contraction hierarchy when the leader built one,
    else from Dijkstra; both give the same exact distances. Rows and paths for ``--paths-for``
    origins always come from Dijkstra, whose shortest-path tree is exact by construction.

    :param graph: the run's graph.
    :param origins: the shard's origins (1-based ids).
    :param requests: the ``--paths-for`` entries whose origin is in this shard.
    :param hierarchy: the graph's contraction hierarchy, if the leader built one.
    :param kernels: the PHAST sweep to use (:class:`batch_fanout_job.hierarchy.Phast`'s ``kernels``).
    """

    # Dijkstra (numba's JIT: its import is most of a child's start-up) only where it is needed: the
    # rows asked for, a shard without a hierarchy, and a sum that might have wrapped in int64.
    def runner() -> Any:
        from sssp_kernel import SingleSource

        return SingleSource(graph.indptr, graph.indices, graph.weights)

    if hierarchy is not None:
        from batch_fanout_job.hierarchy import Phast

        reachable_counts, sums, farthest = Phast(hierarchy, kernels=kernels).summaries(origins - 1)
    else:
        from sssp_kernel import summarize_origins

        summary = summarize_origins(graph.indptr, graph.indices, graph.weights, origins - 1)
        reachable_counts, sums, farthest = summary.reachable, summary.distance_sum, summary.eccentricity
    reachable = [int(value) for value in reachable_counts]
    eccentricity = [int(value) for value in farthest]
    distance_sum = exact_distance_sums(runner, origins, reachable, eccentricity, sums)
    result: dict[str, Any] = {
        "engine": "phast" if hierarchy is not None else "dijkstra",
        "origins": [int(node) for node in origins],
        "reachable": reachable,
        "distance_sum": distance_sum,
        "eccentricity": eccentricity,
        "closeness": closeness_values(reachable, distance_sum, graph.node_count),
        "paths": [],
    }
    if not requests:
        return result, None
    from sssp_kernel import path_to

    dijkstra = runner()
    row_origins = sorted({request.origin for request in requests})
    rows = np.empty((len(row_origins), graph.node_count), dtype=np.int64)
    trees = np.empty((len(row_origins), graph.node_count), dtype=np.int32)
    for row, origin in enumerate(row_origins):
        distances, predecessors = dijkstra.distances(origin - 1, with_predecessors=True)
        assert predecessors is not None
        rows[row], trees[row] = distances, predecessors
    for request in requests:
        row = row_origins.index(request.origin)
        distances = rows[row]
        if request.target is None:
            target = int(np.argmax(np.where(distances == UNREACHABLE, -1, distances)))
        else:
            target = request.target - 1
        nodes = path_to(trees[row], request.origin - 1, target)
        result["paths"].append(
            {
                "origin": request.origin,
                "target": target + 1,
                "cost": int(distances[target]) if nodes else None,
                "nodes": [node + 1 for node in nodes],
            }
        )
    buffer = io.BytesIO()
    # Predecessors as 1-based ids with 0 for none, like every other id the job writes.
    np.savez_compressed(
        buffer,
        origins=np.asarray(row_origins, dtype=np.int64),
        distances=compact_rows(rows),
        predecessors=trees + 1,
    )
    return result, buffer.getvalue()


def format_paths(paths: Sequence[Mapping[str, Any]]) -> str:
    """Paths printed as the classic demo did: ``Path from B to A. Cost: 3`` then the nodes."""
    lines: list[str] = []
    for path in paths:
        if not path["nodes"]:
            lines.append(f"No path from {path['origin']} to {path['target']}.")
            continue
        lines.append(f"Path from {path['origin']} to {path['target']}. Cost: {path['cost']}")
        lines.append(" -> ".join(str(node) for node in path["nodes"]))
    return "\n".join(lines)


def load_hierarchy(store: RunStore, entry: Any, node_count: int) -> Hierarchy | None:
    """The contraction hierarchy the manifest names (checked against its sha256), or None."""
    if not entry:
        return None
    from batch_fanout_job.hierarchy import hierarchy_from_bytes

    key = entry.get("file", "graph/hierarchy.npz") if isinstance(entry, dict) else None
    if not isinstance(key, str):
        raise JobError(f"{store.uri('manifest.json')}: graph.hierarchy is not an object naming a file")
    data = store.read_bytes(key)
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise JobError(f"{store.uri(key)} does not match the sha256 in the manifest (rewritten mid-run?)")
    return hierarchy_from_bytes(data, store.uri(key), node_count)


def load_kernels(phast: bool, paths: bool, kernels: str = "auto") -> str:
    """Load the kernels the shard will run: PHAST when there is a hierarchy (compiled ahead of time
    when it was built, else numba's JIT), Dijkstra (numba's JIT) when there is none or when paths are
    asked for.

    :returns: the kernels loaded, for the log: ``compiled`` (numba not imported), ``jit`` or both.
    """
    loaded: list[str] = []
    if phast:
        from batch_fanout_job.hierarchy import warm_up as warm_up_phast

        loaded.append(f"phast {warm_up_phast(build=False, kernels=kernels)}")
    if paths or not phast:
        from sssp_kernel import warm_up as warm_up_dijkstra

        warm_up_dijkstra()
        loaded.append("dijkstra jit")
    return ", ".join(loaded)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    store = RunStore.from_environ(environ)
    manifest = store.read_json("manifest.json")
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list) or not shards:
        raise JobError(
            f"{store.uri('manifest.json')} plans no shortest-path shards (workloads: "
            f"{manifest.get('workloads') if isinstance(manifest, dict) else '?'})"
        )
    index = logical_index(environ, len(shards), "shard plan")
    maybe_fail_once(environ, store, WORKLOAD, index)
    try:
        kernels = kernel_choice(environ)
    except ValueError as error:
        raise JobError(str(error)) from error
    # The kernels this shard uses are loaded (compiled, or from numba's cache) before the clock
    # starts: the seconds the child reports are its work, the rest of its wall time is start-up.
    loaded = load_kernels(
        bool(manifest["graph"].get("hierarchy")), parse_optional(args.paths_for) is not None, kernels
    )
    started = time.time()
    graph_key = manifest["graph"].get("file", "graph/graph.npz")
    graph_bytes = store.read_bytes(graph_key)
    expected_sha = manifest["graph"].get("sha256")
    if expected_sha and hashlib.sha256(graph_bytes).hexdigest() != expected_sha:
        raise JobError(
            f"{store.uri(graph_key)} does not match the sha256 in the manifest (rewritten mid-run?)"
        )
    graph = graph_from_bytes(graph_bytes, store.uri(graph_key))
    hierarchy = load_hierarchy(store, manifest["graph"].get("hierarchy"), graph.node_count)
    requests = parse_paths_for(parse_optional(args.paths_for), graph.node_count)
    origins = shard_origins(shards[index])
    planned = np.concatenate([shard_origins(shard) for shard in shards]) if requests else origins
    for request in requests:
        if request.origin not in planned:
            raise BadInputError(f"--paths-for: origin {request.origin} is not among the run's origins")
    mine = [request for request in requests if request.origin in origins]
    log_event(
        JOB, "started", index=index, origins=int(origins.shape[0]), nodes=graph.node_count, kernels=loaded
    )
    result, rows = compute_shard(graph, origins, mine, hierarchy, kernels)
    finished = time.time()
    result = {
        "shard": index,
        "graph_sha256": expected_sha,
        **result,
        "runtime": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(finished - started, 3),
            "job_id": environ.get("AWS_BATCH_JOB_ID"),
            "attempt": environ.get("AWS_BATCH_JOB_ATTEMPT"),
        },
    }
    if rows is not None:
        result["rows_file"] = f"{OUTPUT_FOLDER}/{index}.npz"
        store.write_bytes(result["rows_file"], rows)
    uri = store.write_json(f"{OUTPUT_FOLDER}/{index}.json", result)
    if result["paths"]:
        print(format_paths(result["paths"]))
    print(f"shard {index}: {len(result['origins'])} origins -> {uri}")
    log_event(JOB, "finished", index=index, output=uri, seconds=result["runtime"]["seconds"])
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shortest_path", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--paths-for",
        default="none",
        help="ORIGIN or ORIGIN:TARGET entries (1-based ids) to write full rows and paths for",
    )
    return run_cli(JOB, parser, run, argv, environ)


if __name__ == "__main__":
    sys.exit(main())
