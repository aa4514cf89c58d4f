"""Leader job: plans the run's work and writes it to the results store.

For the stress workload it lists the CPU methods of the installed stress-ng, filters them and writes
``stress-tests.txt`` (line i+1 is the test of logical index i). For the shortest-path workload it reads
(or generates) the graph, validates it, writes it once as ``graph/graph.npz`` (with its contraction
hierarchy, ``graph/hierarchy.npz``, when the shards are large enough for it to pay) and plans the shards
of origins. It writes ``manifest.json`` last: the manifest's presence means the plan is complete.

Run as AWS Batch runs it::

    RESULTS_URI=file:///tmp/results RUN_PREFIX=demo/run1 python -m leader --workloads stress --tests 12
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from batch_fanout_job.errors import BadInputError, JobError
from batch_fanout_job.limits import check_graph_text_fits, check_grid_fits, largest_graph_text_bytes
from batch_fanout_job.plan import parse_positive_int, parse_workloads, plan_shards
from batch_fanout_job.runtime import log_event, parse_optional, run_cli
from batch_fanout_job.store import RunStore, open_uri
from batch_fanout_job.stress_ng import select_methods

JOB = "leader"
MANIFEST_VERSION = 1
DEFAULT_GRID = "64x64"
DEFAULT_EDGE_PROBABILITY = 0.7
DEFAULT_DURATION = "60s"
HIERARCHY_FILE = "graph/hierarchy.npz"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m leader", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--workloads", default="none", help="stress, shortest_path or stress,shortest_path (none: both)")
    add("--tests", default="none", help="number of stress tests, or all (none: all)")
    add(
        "--stress-duration",
        default="none",
        help=f"seconds per test, e.g. 60 or 60s (none: {DEFAULT_DURATION})",
    )
    add("--stress-cpus", default="none", help="stressor instances per test, 0 = one per CPU (none: 1)")
    add(
        "--methods", default="none", help="comma-separated CPU methods or globs to include (all or none: all)"
    )
    add("--exclude-methods", default="none", help="comma-separated CPU methods or globs to exclude")
    add(
        "--graph",
        default="none",
        help="URI of a DIMACS .gr file (plain or gzip), or generate (none: generate)",
    )
    add("--grid", default="none", help=f"ROWSxCOLUMNS of the generated grid (none: {DEFAULT_GRID})")
    add(
        "--edge-probability",
        default="none",
        help=f"chance each grid edge exists (none: {DEFAULT_EDGE_PROBABILITY})",
    )
    add("--seed", default="none", help="seed of the generated graph (none: 0)")
    add("--shards", default="none", help="number of shortest-path shards (none: 1)")
    add("--origins", default="none", help="all, a count N, or a list of node ids 1,5,9 (none: all)")
    return parser


# --- stress ------------------------------------------------------------------------------------------


def parse_duration(text: str) -> str:
    """Normalize ``--stress-duration`` to stress-ng's form (``60`` -> ``60s``)."""
    if not re.match(r"^[1-9][0-9]*[smhd]?$", text):
        raise BadInputError(
            f"--stress-duration {text!r}: expected a positive number of seconds, e.g. 60 or 60s"
        )
    return text if text[-1] in "smhd" else f"{text}s"


def plan_stress_tests(  # noqa: PLR0917
    available: Sequence[str],
    tests: str | None,
    include: str | None,
    exclude: str | None,
    duration: str,
    stressors: int,
) -> tuple[list[str], list[str]]:
    """Choose the methods and write their test lines.

    :returns: the methods and the test lines (same order).
    :raises BadInputError: when ``tests`` asks for more tests than methods match.
    """
    from batch_fanout_job.stress_ng import format_test_line

    methods = select_methods(available, include, exclude)
    if tests is None or tests.lower() == "all":
        if not methods:
            raise BadInputError("no CPU method matches --methods/--exclude-methods")
    else:
        count = parse_positive_int(tests, "--tests")
        if count > len(methods):
            raise BadInputError(
                f"--tests {count}: only {len(methods)} CPU methods match the filter "
                f"(--methods {include or 'all'}, --exclude-methods {exclude or 'none'})"
            )
        methods = methods[:count]
    return methods, [format_test_line(method, stressors, duration) for method in methods]


# --- shortest paths ------------------------------------------------------------------------------------


def parse_grid(text: str) -> tuple[int, int]:
    match = re.match(r"^([1-9][0-9]*)x([1-9][0-9]*)$", text)
    if not match:
        raise BadInputError(f"--grid {text!r}: expected ROWSxCOLUMNS, e.g. 512x512")
    return int(match.group(1)), int(match.group(2))


def choose_origins(spec: str | None, node_count: int) -> tuple[Any, str]:
    """The origins (1-based ids, ascending and distinct for ``all`` and counts, as given for lists).

    ``all``: every node. ``N``: N nodes spread evenly over the ids. ``a,b,c`` (or ``ids:a``): those nodes.

    :raises BadInputError: naming an origin that is not a node, or a bad count.
    """
    import numpy as np

    if spec is None or spec.lower() == "all":
        return np.arange(1, node_count + 1, dtype=np.int64), "all"
    if spec.isdigit():
        count = parse_positive_int(spec, "--origins")
        if count > node_count:
            raise BadInputError(f"--origins {count}: the graph has only {node_count} nodes")
        return (np.arange(count, dtype=np.int64) * node_count) // count + 1, "count"
    listed = spec.removeprefix("ids:")
    origins: list[int] = []
    for raw_entry in listed.split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        if not entry.isdigit():
            raise BadInputError(f"--origins: {entry!r} is not a node id")
        node = int(entry)
        if not 1 <= node <= node_count:
            raise BadInputError(f"--origins: origin {node} is not a node of the graph (ids 1..{node_count})")
        if node in origins:
            raise BadInputError(f"--origins: origin {node} is listed twice")
        origins.append(node)
    if not origins:
        raise BadInputError(f"--origins {spec!r}: no origin given")
    return np.asarray(origins, dtype=np.int64), "list"


def prepare_hierarchy(graph: Any, shards: Sequence[Any]) -> tuple[bytes | None, dict[str, Any] | None]:
    """The contraction hierarchy of the graph, built once here for every child (``graph/hierarchy.npz``),
    when its build pays for itself on the largest shard; otherwise the children run Dijkstra."""
    from batch_fanout_job.hierarchy import build_hierarchy, hierarchy_pays, hierarchy_to_bytes
    from batch_fanout_job.plan import shard_origins

    largest = max(int(shard_origins(shard).shape[0]) for shard in shards)
    max_cost = int(graph.weights.max()) if graph.arc_count else 0
    if not hierarchy_pays(largest, graph.node_count, max_cost):
        return None, None
    import resource

    from batch_fanout_job import limits
    from batch_fanout_job.hierarchy import build_memory_mib

    # The leader's peak so far (the graph's generation or parsing) plus the build must fit its memory;
    # else the children run Dijkstra, slower but within their bounds.
    needed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + build_memory_mib(graph.arc_count)
    if needed > limits.LEADER_MEMORY_MIB:
        log_event(JOB, "no hierarchy", needed_mib=needed, memory_mib=limits.LEADER_MEMORY_MIB)
        return None, None
    started = time.perf_counter()
    hierarchy = build_hierarchy(graph.indptr, graph.indices, graph.weights)
    data = hierarchy_to_bytes(hierarchy)
    return data, {
        "file": HIERARCHY_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "arcs": hierarchy.arc_count,
        "build_seconds": round(time.perf_counter() - started, 3),
    }


def load_graph(
    graph_spec: str | None, grid: str | None, edge_probability: str | None, seed: str | None
) -> tuple[Any, dict[str, Any]]:
    """Read or generate the graph; return it with its description for the manifest."""
    from batch_fanout_job.graphs import decompress_if_gzip, generate_road_grid, read_dimacs

    if graph_spec is None or graph_spec.lower() == "generate":
        rows, columns = parse_grid(grid or DEFAULT_GRID)
        # Refused before numpy tries to allocate it: a clear bound instead of a MemoryError traceback.
        check_grid_fits(rows, columns)
        try:
            probability = (
                float(edge_probability) if edge_probability is not None else DEFAULT_EDGE_PROBABILITY
            )
        except ValueError as error:
            raise BadInputError(
                f"--edge-probability {edge_probability!r}: expected a number in (0, 1]"
            ) from error
        if seed is not None and not re.match(r"^[0-9]+$", seed):
            raise BadInputError(f"--seed {seed!r}: expected a non-negative integer")
        seed_value = int(seed) if seed is not None else 0
        build = generate_road_grid(rows, columns, probability, seed_value)
        source = f"generated grid {rows}x{columns}, edge probability {probability}, seed {seed_value}"
        description: dict[str, Any] = {
            "source": source,
            "generator": {
                "rows": rows,
                "columns": columns,
                "edge_probability": probability,
                "seed": seed_value,
            },
        }
    else:
        uri = graph_spec if "://" in graph_spec else os.path.abspath(graph_spec)
        # Refused with its bound, rather than killed for memory half way through parsing; a gzip file
        # is expanded no further than one byte past the bound.
        text = decompress_if_gzip(open_uri(uri), uri, limit=largest_graph_text_bytes())
        check_graph_text_fits(len(text), f"--graph {uri}")
        build = read_dimacs(text, uri)
        description = {"source": uri}
    description.update(
        {
            "nodes": build.graph.node_count,
            "arcs": build.graph.arc_count,
            "input_arcs": build.input_arcs,
            "merged_duplicate_arcs": build.merged_duplicate_arcs,
            "max_cost": int(build.graph.weights.max()) if build.graph.arc_count else 0,
        }
    )
    return build.graph, description


# --- the job -----------------------------------------------------------------------------------------------


def installed_stress_ng_version() -> str | None:
    """The version of stress-ng when it is installed (recorded even for a shortest-path-only run)."""
    from batch_fanout_job.stress_ng import find_stress_ng, stress_ng_version

    try:
        return stress_ng_version(find_stress_ng())
    except JobError:
        return None


def tool_versions(stress_ng: str | None) -> dict[str, str | None]:
    def version_of(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "stress-ng": stress_ng,
        "python": platform.python_version(),
        "numpy": version_of("numpy"),
        "scipy": version_of("scipy"),
    }


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    store = RunStore.from_environ(environ)
    # Withdraw an earlier plan first: present means the plan of this attempt is complete.
    store.delete("manifest.json")
    workloads = parse_workloads(parse_optional(args.workloads) or "stress,shortest_path")
    started = time.time()
    log_event(JOB, "started", run=store.uri(), workloads=workloads)
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "workloads": workloads,
        "tests": [],
        "methods": [],
        "array_sizes": {"stress": 0, "shortest_path": 0},
    }
    stress_version: str | None = None
    # Check every option before any write, so bad input leaves nothing behind.
    duration = parse_duration(parse_optional(args.stress_duration) or DEFAULT_DURATION)
    cpus_text = parse_optional(args.stress_cpus) or "1"
    if not cpus_text.isdigit():
        raise BadInputError(f"--stress-cpus {cpus_text!r}: expected a non-negative integer (0 = one per CPU)")
    shards_text = parse_optional(args.shards)
    shard_count = parse_positive_int(shards_text, "--shards") if shards_text else 1

    if "stress" in workloads:
        from batch_fanout_job.stress_ng import find_stress_ng, list_cpu_methods, stress_ng_version

        executable = find_stress_ng()
        stress_version = stress_ng_version(executable)
        available = list_cpu_methods(executable)
        methods, lines = plan_stress_tests(
            available,
            parse_optional(args.tests),
            parse_optional(args.methods),
            parse_optional(args.exclude_methods),
            duration,
            int(cpus_text),
        )
        manifest.update(
            tests=lines,
            methods=methods,
            stress={"duration": duration, "stressors": int(cpus_text), "available_methods": len(available)},
        )
        manifest["array_sizes"]["stress"] = len(lines)
    graph_bytes: bytes | None = None
    hierarchy_bytes: bytes | None = None
    if "shortest_path" in workloads:
        from batch_fanout_job.graphs import graph_to_bytes

        graph, description = load_graph(
            parse_optional(args.graph),
            parse_optional(args.grid),
            parse_optional(args.edge_probability),
            parse_optional(args.seed),
        )
        origins, origin_mode = choose_origins(parse_optional(args.origins), graph.node_count)
        shards = plan_shards(origins, shard_count)
        graph_bytes = graph_to_bytes(graph)
        description["file"] = "graph/graph.npz"
        description["sha256"] = hashlib.sha256(graph_bytes).hexdigest()
        hierarchy_bytes, description["hierarchy"] = prepare_hierarchy(graph, shards)
        manifest.update(
            graph=description,
            origins={"mode": origin_mode, "count": int(origins.shape[0])},
            shards=shards,
        )
        manifest["array_sizes"]["shortest_path"] = len(shards)

    # The manifest goes last.
    if manifest["tests"]:
        store.write_text("stress-tests.txt", "".join(f"{line}\n" for line in manifest["tests"]))
    if graph_bytes is not None:
        store.write_bytes("graph/graph.npz", graph_bytes)
    if hierarchy_bytes is not None:
        store.write_bytes(HIERARCHY_FILE, hierarchy_bytes)
    if stress_version is None:
        stress_version = installed_stress_ng_version()
    manifest["tool_versions"] = tool_versions(stress_version)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest_uri = store.write_json("manifest.json", manifest)
    print(summary(manifest, store.uri()))
    log_event(
        JOB,
        "finished",
        manifest=manifest_uri,
        seconds=round(time.time() - started, 3),
        array_sizes=manifest["array_sizes"],
    )
    return 0


def summary(manifest: Mapping[str, Any], run_uri: str) -> str:
    """A one-screen summary of the plan."""
    lines = [f"run: {run_uri}", f"workloads: {', '.join(manifest['workloads'])}"]
    if "stress" in manifest["workloads"]:
        methods = manifest["methods"]
        shown = ", ".join(methods[:12]) + (f", ... ({len(methods) - 12} more)" if len(methods) > 12 else "")
        lines += [
            f"stress tests: {len(manifest['tests'])} x {manifest['stress']['duration']} with "
            f"{manifest['stress']['stressors']} stressor(s): {shown}",
            f"  first test line: {manifest['tests'][0]}",
        ]
    if "shortest_path" in manifest["workloads"]:
        graph = manifest["graph"]
        lines += [
            f"graph: {graph['source']}",
            f"  {graph['nodes']} nodes, {graph['arcs']} arcs ({graph['merged_duplicate_arcs']} duplicate arcs "
            f"merged, cheapest kept)",
            f"origins: {manifest['origins']['count']} ({manifest['origins']['mode']}) in "
            f"{len(manifest['shards'])} shards of {min(s['count'] for s in manifest['shards'])}.."
            f"{max(s['count'] for s in manifest['shards'])}",
        ]
    sizes = manifest["array_sizes"]
    lines.append(f"array sizes: stress {sizes['stress']}, shortest_path {sizes['shortest_path']}")
    lines.append(f"manifest: {run_uri}/manifest.json")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_cli(JOB, build_parser(), run, argv, environ)


if __name__ == "__main__":
    sys.exit(main())
