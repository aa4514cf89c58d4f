"""Benchmark: one-to-all shortest paths on a road-like grid of about 260,000 nodes and on rome99.

Interleaved in one run, on the same graph and the same sources, each engine's time per source with the
load average of the machine beside it:

- PHAST over the contraction hierarchy (``include/containers/shared/batch_fanout_job/hierarchy.py``),
  four origins per sweep as the job runs it, and one per sweep;
- the Dijkstra kernel of the job (``include/containers/shortest_path/sssp_kernel.py``, numba), as the
  job runs it (distances plus per-origin figures);
- plain ``scipy.sparse.csgraph.dijkstra``;
- Boost's ``dijkstra_shortest_paths`` (``benchmarks/boost_dijkstra.cpp``, compiled here with g++ from
  Debian's libboost-graph-dev) on a ``compressed_sparse_row_graph`` and on the classic demo's
  ``adjacency_list``.

Every engine's reachable counts and distance sums are checked against each other. It also states the
hierarchy's build time and size and the number of origins that repays the build, the numba start-up of
a fresh job, what a child's start-up is made of (a fresh interpreter timing each import and the kernel
load), and real leader + shortest-path child runs at the DAGs' default shard sizes (read from the DAG
files), with the PHAST sweep compiled ahead of time (the local endpoint's process runtime after ``make
setup``, and the shortest-path image with ``--image``) and with numba's JIT
(``BATCH_FANOUT_KERNELS=jit``), interleaved: their start-up share of the wall time, the target's row,
and their peak memory. Its last line is the start-up share at the DAGs' default shard
size against its target (``TARGET ...``), for ``make bench``'s summary. Figures are printed as Markdown; ``--results
benchmarks/RESULTS.md`` also writes them into that file's ``## Shortest paths`` section.

Needs g++ and Debian's ``libboost-graph-dev`` (installed with apt-get when missing and run as root).

    .venv/bin/python benchmarks/shortest_path.py --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONTAINERS = REPO / "include" / "containers"
WORK = REPO / "benchmarks" / ".work"
BOOST_HEADER = Path("/usr/include/boost/graph/dijkstra_shortest_paths.hpp")
BOOST_VERSION_HEADER = Path("/usr/include/boost/version.hpp")
ROME99 = REPO / "tests" / "data" / "rome99.gr"
DAGS = REPO / "dags"
STARTUP_TARGET = 0.10
CHILD_REPEATS = 3
# The shortest-path image as `make images` builds it.
DEFAULT_IMAGE = "local/batch-fanout/shortest_path:latest"
SECTION = "## Shortest paths"

sys.path.insert(0, str(CONTAINERS / "shortest_path"))
sys.path.insert(0, str(CONTAINERS / "shared"))

from sssp_kernel import summarize_origins, warm_up  # noqa: E402

from batch_fanout_job import hierarchy as ch  # noqa: E402
from batch_fanout_job.graphs import Graph, generate_road_grid, read_dimacs  # noqa: E402

Answers = list[tuple[int, int]]


def ensure_boost() -> Path:
    """Compile the Boost program (installing libboost-graph-dev first if it is missing)."""
    if shutil.which("g++") is None:
        raise SystemExit("g++ is needed: apt-get install -y g++")
    if not BOOST_HEADER.exists():
        if os.geteuid() != 0:
            raise SystemExit(
                "Boost Graph headers are missing: apt-get install -y libboost-graph-dev (as root)"
            )
        print("installing libboost-graph-dev ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "libboost-graph-dev"], check=True, capture_output=True)
    WORK.mkdir(parents=True, exist_ok=True)
    binary = WORK / "boost_dijkstra"
    source = REPO / "benchmarks" / "boost_dijkstra.cpp"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(
            ["g++", "-O3", "-march=native", "-DNDEBUG", "-o", str(binary), str(source)], check=True
        )
    return binary


def write_arc_list(graph: Graph, path: Path) -> None:
    tails = np.repeat(np.arange(graph.node_count), np.diff(graph.indptr))
    with path.open("w") as handle:
        handle.write(f"{graph.node_count} {graph.arc_count}\n")
        np.savetxt(handle, np.column_stack([tails, graph.indices, graph.weights]), fmt="%d")


def load_average() -> float:
    return os.getloadavg()[0]


Run = Callable[[np.ndarray], tuple[float, Answers]]


@dataclass
class Engine:
    """One engine: milliseconds per source of every group of sources it ran, with the load beside."""

    label: str
    run: Run
    groups: list[tuple[float, float]] = field(default_factory=list)
    answers: Answers = field(default_factory=list)

    def measure(self, sources: np.ndarray) -> float:
        load = load_average()
        milliseconds, answers = self.run(sources)
        self.groups.append((milliseconds, load))
        self.answers += answers
        return milliseconds

    @property
    def median(self) -> float:
        return statistics.median(ms for ms, _ in self.groups)


def timed(per_source: Callable[[int], tuple[int, int]]) -> Run:
    def run(sources: np.ndarray) -> tuple[float, Answers]:
        start = time.perf_counter()
        answers = [per_source(int(source)) for source in sources]
        return (time.perf_counter() - start) / len(sources) * 1000, answers

    return run


class BoostServer:
    """The C++ program kept running with its graph loaded, answering sources given on its standard
    input one group at a time, so that it interleaves with the other engines; time per source as
    measured inside it (the pipe excluded)."""

    def __init__(self, binary: Path, graph_file: Path, kind: str) -> None:
        self.process = subprocess.Popen(
            [str(binary), str(graph_file), kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def __call__(self, sources: np.ndarray) -> tuple[float, Answers]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("".join(f"{int(source)}\n" for source in sources))
        self.process.stdin.flush()
        rows = [self.process.stdout.readline().split() for _ in sources]
        if any(len(row) != 4 for row in rows):
            raise SystemExit(f"the Boost program stopped answering (exit {self.process.poll()})")
        return statistics.mean(float(row[1]) for row in rows), [(int(row[2]), int(row[3])) for row in rows]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def phast_engine(phast: ch.Phast) -> Run:
    """Per source, over sweeps of ``phast.width`` origins (the upward searches included)."""

    def run(sources: np.ndarray) -> tuple[float, Answers]:
        start = time.perf_counter()
        reachable, distance_sum, _ = phast.summaries(sources)
        elapsed = time.perf_counter() - start
        return elapsed / len(sources) * 1000, list(
            zip(reachable.tolist(), distance_sum.tolist(), strict=True)
        )

    return run


@dataclass
class GraphFigures:
    name: str
    graph: Graph
    sources: int
    repeats: int
    engines: dict[str, Engine]
    ratios: dict[str, list[float]]
    build_seconds: float
    build_load: float
    hierarchy: ch.Hierarchy


def measure_graph(
    name: str, graph: Graph, binary: Path, *, sources_count: int, repeats: int, seed: int
) -> GraphFigures:
    """Every engine on the same groups of sources, interleaved group by group (in a rotating order),
    so that every ratio compares runs a few milliseconds apart, under the same load."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    print(f"{name}: {graph.node_count} nodes, {graph.arc_count} arcs", file=sys.stderr)
    build_load = load_average()
    started = time.perf_counter()
    hierarchy = ch.build_hierarchy(graph.indptr, graph.indices, graph.weights)
    build_seconds = time.perf_counter() - started
    sources = np.random.default_rng(seed).choice(graph.node_count, sources_count, replace=False)
    matrix = csr_matrix(
        (graph.weights.astype(np.float64), graph.indices, graph.indptr),
        shape=(graph.node_count, graph.node_count),
    )

    def job_kernel(source: int) -> tuple[int, int]:
        summary = summarize_origins(graph.indptr, graph.indices, graph.weights, np.array([source]))
        return int(summary.reachable[0]), int(summary.distance_sum[0])

    def scipy_dijkstra(source: int) -> tuple[int, int]:
        distances = dijkstra(matrix, indices=source)
        finite = distances[np.isfinite(distances)]
        return int(finite.shape[0]), int(finite.sum())

    with tempfile.TemporaryDirectory() as folder:
        arc_file = Path(folder) / "graph.txt"
        write_arc_list(graph, arc_file)
        boost_csr = BoostServer(binary, arc_file, "csr")
        boost_adjacency = BoostServer(binary, arc_file, "adjacency_list")
        engines = {
            "phast": Engine(
                f"PHAST over the contraction hierarchy, {ch.SWEEP_WIDTH} origins per sweep (the job; "
                f"{ch.Phast(hierarchy).kernels} sweep)",
                phast_engine(ch.Phast(hierarchy)),
            ),
            "phast_jit": Engine(
                f"PHAST, {ch.SWEEP_WIDTH} origins per sweep, numba's JIT sweep (BATCH_FANOUT_KERNELS=jit)",
                phast_engine(ch.Phast(hierarchy, kernels="jit")),
            ),
            "phast1": Engine("PHAST, 1 origin per sweep", phast_engine(ch.Phast(hierarchy, width=1))),
            "kernel": Engine(
                "Dijkstra kernel of the job (numba 4-ary heap, + per-origin figures)", timed(job_kernel)
            ),
            "scipy": Engine("scipy.sparse.csgraph.dijkstra", timed(scipy_dijkstra)),
            "boost_csr": Engine(
                "Boost dijkstra_shortest_paths, compressed_sparse_row_graph (g++ -O3 -march=native)",
                boost_csr,
            ),
            "boost_adj": Engine(
                "Boost dijkstra_shortest_paths, adjacency_list (the classic demo)", boost_adjacency
            ),
        }
        try:
            for engine in engines.values():  # an uncounted group: compiled code and caches warm
                engine.run(sources[: ch.SWEEP_WIDTH])
            ratios: dict[str, list[float]] = {key: [] for key in engines}
            order = list(engines)
            for _ in range(repeats):
                for start in range(0, sources.shape[0], ch.SWEEP_WIDTH):
                    group = sources[start : start + ch.SWEEP_WIDTH]
                    measured = {key: engines[key].measure(group) for key in order}
                    for key, milliseconds in measured.items():
                        ratios[key].append(milliseconds / measured["boost_csr"])
                    order = order[1:] + order[:1]
        finally:
            boost_csr.close()
            boost_adjacency.close()
    reference = engines["boost_csr"].answers
    for key, engine in engines.items():
        if engine.answers != reference:
            raise SystemExit(f"{name}: {key} disagrees with Boost on reachable counts or distance sums")
    return GraphFigures(
        name, graph, sources_count, repeats, engines, ratios, build_seconds, build_load, hierarchy
    )  # fmt: skip


def quartiles(values: list[float]) -> tuple[float, float, float]:
    low, middle, high = (
        statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    )
    return low, middle, high


def graph_section(figures: GraphFigures) -> str:
    engines = figures.engines
    loads = [load for engine in engines.values() for _, load in engine.groups]
    groups = len(engines["boost_csr"].groups)
    lines = [
        f"**{figures.name}**: {figures.graph.node_count:,} nodes, {figures.graph.arc_count:,} arcs; "
        f"{figures.sources} random sources in groups of {ch.SWEEP_WIDTH}, {figures.repeats} passes: "
        f"{groups} groups, every engine ran each group in turn (rotating order), load average "
        f"{min(loads):.1f}-{max(loads):.1f} meanwhile. Ratio: per group, engine / Boost CSR on the same "
        "sources moments apart; median (and quartiles) over the groups. Every engine gave the same "
        "reachable counts and distance sums.",
        "",
        "| engine | ms per source, median | vs Boost CSR, median | quartiles |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, engine in engines.items():
        low, middle, high = quartiles(figures.ratios[key])
        lines.append(f"| {engine.label} | {engine.median:.2f} | {middle:.2f}x | {low:.2f}-{high:.2f}x |")
    phast_ms = engines["phast"].median
    kernel_ms = engines["kernel"].median
    saved = kernel_ms - phast_ms
    break_even = figures.build_seconds * 1000 / saved if saved > 0 else float("inf")
    h = figures.hierarchy
    lines += [
        "",
        f"Contraction hierarchy: built in {figures.build_seconds:.2f} s (load avg {figures.build_load:.1f}), "
        f"{h.arc_count:,} arcs ({h.arc_count / max(1, h.graph_arcs):.2f} per graph arc), "
        f"{h.nbytes / 2**20:.1f} MiB. The build costs what PHAST saves over the Dijkstra kernel on "
        f"{break_even:,.0f} origins (build / (Dijkstra kernel - PHAST), medians); amortised over the "
        f"{figures.graph.node_count:,} origins of an all-pairs run it adds "
        f"{figures.build_seconds * 1000 / figures.graph.node_count:.3f} ms per origin.",
        "",
    ]
    return "\n".join(lines)


def kernel_target_lines(grid_label: str, grid: GraphFigures, rome: GraphFigures) -> list[str]:
    """Issue 16's kernel rows as ``TARGET`` lines, which ``make bench``'s summary collects: the job's
    kernel (PHAST) per source / Boost CSR on each graph, from the ratios of the same groups of sources,
    and the Dijkstra fallback on the grid (where DESIGN.md states its target)."""
    lines = []
    for label, figures in ((grid_label, grid), ("rome99", rome)):
        low, middle, high = quartiles(figures.ratios["phast"])
        load = max(load for engine in figures.engines.values() for _, load in engine.groups)
        lines.append(
            f"TARGET kernel per source / Boost CSR Dijkstra, {label}: {middle:.2f}x (quartiles "
            f"{low:.2f}-{high:.2f}x, {figures.engines['phast'].median:.2f} vs "
            f"{figures.engines['boost_csr'].median:.2f} ms per source) (target <= 0.5x) (load {load:.1f})"
        )
        if figures is grid:
            lines.append(
                f"TARGET Dijkstra fallback per source / Boost CSR Dijkstra, {label}: "
                f"{statistics.median(figures.ratios['kernel']):.2f}x (target <= 1x) (load {load:.1f})"
            )
    return lines


def versions() -> str:
    boost = "?"
    if BOOST_VERSION_HEADER.exists():
        found = re.search(r'define BOOST_LIB_VERSION "([0-9_]+)"', BOOST_VERSION_HEADER.read_text())
        boost = found.group(1).replace("_", ".") if found else "?"
    gxx = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    packages = ", ".join(f"{name} {metadata.version(name)}" for name in ("numpy", "numba", "scipy"))
    return f"Python {platform.python_version()}, {packages}, Boost {boost} (Debian libboost-graph-dev), g++ {gxx}"


def cold_start() -> tuple[float, float]:
    """Seconds to import and compile the job's kernels with an empty numba cache, then with a warm one."""
    code = (
        "import time; t = time.perf_counter(); import sssp_kernel; sssp_kernel.warm_up(); "
        "from batch_fanout_job import hierarchy; hierarchy.warm_up(kernels='jit'); "
        "print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        environ = {**os.environ, "NUMBA_CACHE_DIR": cache}
        seconds = []
        for _ in range(2):
            output = subprocess.run(
                [sys.executable, "-c", code],
                cwd=CONTAINERS / "shortest_path",
                env=environ,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            seconds.append(float(output.strip()))
    return seconds[0], seconds[1]


def dag_defaults(dag_file: str, dag_id: str, grid_key: str, shards_key: str) -> tuple[str, int]:
    """The default grid and shard count of a DAG's trigger form, from the DAG as Airflow's DagBag
    loads it from its file (the form's fields may come from the project package)."""
    from airflow.dag_processing.dagbag import DagBag

    if str(DAGS) not in sys.path:
        sys.path.insert(0, str(DAGS))  # as Airflow puts the DAG folder there: the files import the package
    bag = DagBag(dag_folder=str(DAGS / dag_file))
    if bag.import_errors or dag_id not in bag.dags:
        raise SystemExit(f"{dag_file}: DAG {dag_id} did not load: {bag.import_errors or 'not in the file'}")
    params = bag.dags[dag_id].params
    if grid_key not in params or shards_key not in params:
        raise SystemExit(f"{dag_file}: DAG {dag_id} has no {grid_key} and {shards_key} in its trigger form")
    return str(params[grid_key]), int(params[shards_key])


@dataclass
class ChildRun:
    grid: str
    shards: int
    origins: int
    engine: str
    kernels: str
    wall: float
    work: float
    peak_kib: int
    leader_wall: float
    leader_peak_kib: int
    load: float
    cpu: float

    @property
    def start_up(self) -> float:
        return self.wall - self.work

    @property
    def share(self) -> float:
        return self.start_up / self.wall


def median_run(runs: list[ChildRun]) -> ChildRun:
    """The run of median start-up share (the others' figures are in the range printed beside it)."""
    return sorted(runs, key=lambda run: run.share)[len(runs) // 2]


# Started from a bare interpreter: Linux carries the parent's peak RSS into a spawned process's
# ru_maxrss (at exec it keeps the old address space's high-water mark), and this benchmark's own
# process holds the big graph. The launcher also times the job, without its own start.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "wall": wall, "peak_kib": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def launch(
    module: str, args: list[str], folder: str, environ: dict[str, str]
) -> tuple[float, int, str, float]:
    """Run ``python -m module args`` in the job's folder as the local endpoint does; wall, peak RSS, the
    kernels its ``started`` event names and its CPU time (user + system)."""
    completed = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "-m", module, *args],
        cwd=CONTAINERS / folder,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    if figures["exit"] != 0:
        raise SystemExit(f"python -m {module} {' '.join(args)} failed (exit {figures['exit']})")
    kernels = ""
    for line in completed.stderr.splitlines():
        if line.startswith("{") and '"started"' in line:
            kernels = str(json.loads(line).get("kernels", ""))
    return float(figures["wall"]), int(figures["peak_kib"]), kernels, float(figures["cpu"])


def child_runs(
    grid: str, seed: int, shards: int, origins: str = "all", kernels: tuple[str, ...] = ("auto",)
) -> dict[str, list[ChildRun]]:
    """The real leader, then shard 0 of its plan as a real shortest-path child (``python -m``, as the
    local endpoint runs it), :data:`CHILD_REPEATS` times for each kernel choice in turn
    (``BATCH_FANOUT_KERNELS``): the child's wall time, the time it reports for its work, its peak RSS."""
    runs: dict[str, list[ChildRun]] = {choice: [] for choice in kernels}
    with tempfile.TemporaryDirectory() as store:
        environ = {**os.environ, "RESULTS_URI": Path(store).as_uri(), "RUN_PREFIX": "bench/child"}
        environ.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
        command = ["--workloads", "shortest_path", "--graph", "generate", "--grid", grid, "--seed", str(seed)]
        command += ["--origins", origins, "--shards", str(shards)]
        leader_wall, leader_peak, _, _ = launch("leader", command, "leader", environ)
        for _ in range(CHILD_REPEATS):
            for choice in kernels:
                load = load_average()
                child_environ = {**environ, "BATCH_FANOUT_KERNELS": choice}
                if shards > 1:
                    child_environ["AWS_BATCH_JOB_ARRAY_INDEX"] = "0"
                wall, peak, loaded, cpu = launch(
                    "shortest_path", ["--paths-for", "none"], "shortest_path", child_environ
                )
                output = json.loads(
                    (Path(store) / "bench" / "child" / "shortest_paths" / "0.json").read_text()
                )
                work = float(output["runtime"]["seconds"])
                origin_count, engine = len(output["origins"]), output["engine"]
                runs[choice].append(
                    ChildRun(
                        grid,
                        shards,
                        origin_count,
                        engine,
                        loaded,
                        wall,
                        work,
                        peak,
                        leader_wall,
                        leader_peak,
                        load,
                        cpu,
                    )
                )
    return runs


def image_child_runs(
    image: str, grid: str, shards: int
) -> tuple[dict[str, list[ChildRun]], dict[str, list[float]]]:
    """As :func:`child_runs`, with the child in ``image`` (podman, as the local endpoint's podman runtime
    runs it, the leader in the process runtime): its wall and CPU time are measured inside the container
    by the same launcher, so they compare with the process runtime's; the wall of the whole
    ``podman run`` (container set-up and removal included) is returned beside them."""
    from batch_fanout.images.engine import ContainerEngine

    engine = ContainerEngine.detect("podman")
    runs: dict[str, list[ChildRun]] = {"auto": [], "jit": []}
    podman_walls: dict[str, list[float]] = {choice: [] for choice in runs}
    with tempfile.TemporaryDirectory() as store:
        environ = {**os.environ, "RESULTS_URI": Path(store).as_uri(), "RUN_PREFIX": "bench/child"}
        environ.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
        command = ["--workloads", "shortest_path", "--graph", "generate", "--grid", grid, "--seed", "1"]
        command += ["--origins", "all", "--shards", str(shards)]
        leader_wall, leader_peak, _, _ = launch("leader", command, "leader", environ)
        # The image's job user (not root) writes the child's output.
        for path in [Path(store), *Path(store).rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        for _ in range(CHILD_REPEATS):
            for choice, choice_runs in runs.items():
                load = load_average()
                options = ["-v", f"{store}:/results", "--env=RESULTS_URI=file:///results"]
                options += ["--env=RUN_PREFIX=bench/child", f"--env=BATCH_FANOUT_KERNELS={choice}"]
                options += ["--env=AWS_BATCH_JOB_ARRAY_INDEX=0"] if shards > 1 else []
                started = time.perf_counter()
                completed = subprocess.run(
                    engine.command(
                        "run", "--rm", "--pull=never", *engine.limit_args, *options, image,
                        "python", "-c", LAUNCHER, "-m", "shortest_path", "--paths-for", "none",
                    ),
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                podman_walls[choice].append(time.perf_counter() - started)
                figures = json.loads(completed.stdout.strip().splitlines()[-1])
                if figures["exit"] != 0:
                    raise SystemExit(
                        f"the child in {image} failed (exit {figures['exit']}): {completed.stderr}"
                    )
                loaded = next(
                    str(json.loads(line).get("kernels", ""))
                    for line in completed.stderr.splitlines()
                    if line.startswith("{") and '"started"' in line
                )
                output = json.loads(
                    (Path(store) / "bench" / "child" / "shortest_paths" / "0.json").read_text()
                )
                choice_runs.append(
                    ChildRun(
                        grid, shards, len(output["origins"]), output["engine"], loaded, float(figures["wall"]),
                        float(output["runtime"]["seconds"]), int(figures["peak_kib"]), leader_wall, leader_peak,
                        load, float(figures["cpu"]),
                    )
                )  # fmt: skip
    return runs, podman_walls


# A fresh interpreter timing each part of a child's start-up, in the order the child meets them.
BREAKDOWN = """
import json, sys, time
start = time.perf_counter()
marks = []
def mark(name):
    global start
    now = time.perf_counter()
    marks.append((name, now - start))
    start = now
import numpy; mark("import numpy")
import fsspec; mark("import fsspec (the results store)")
import shortest_path; mark("import the job's own modules")
from batch_fanout_job import hierarchy
if hierarchy.warm_up(build=False) != "compiled":
    sys.exit("the compiled PHAST sweep is not built: make setup")
mark("load the compiled PHAST sweep")
import numba; mark("import numba")
hierarchy.warm_up(build=False, kernels="jit"); mark("load the JIT PHAST sweep (numba cache)")
import sssp_kernel; sssp_kernel.warm_up(); mark("load the JIT Dijkstra (numba cache)")
print(json.dumps(marks))
"""


def startup_breakdown() -> tuple[list[tuple[str, float]], list[float]]:
    """Median seconds of each part of a child's start-up over :data:`CHILD_REPEATS` fresh
    interpreters (the interpreter's own start timed from outside, ``python -c pass``), and the load
    averages meanwhile."""
    rounds: list[list[tuple[str, float]]] = []
    loads: list[float] = []
    for _ in range(CHILD_REPEATS):
        loads.append(load_average())
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare = time.perf_counter() - started
        output = subprocess.run(
            [sys.executable, "-c", BREAKDOWN],
            cwd=CONTAINERS / "shortest_path",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        marks = [(str(name), float(seconds)) for name, seconds in json.loads(output)]
        rounds.append([("start the interpreter (python -c pass)", bare), *marks])
    names = [name for name, _ in rounds[0]]
    return [(name, statistics.median(r[i][1] for r in rounds)) for i, name in enumerate(names)], loads


def write_section(results_file: Path, text: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving the others alone."""
    current = results_file.read_text() if results_file.exists() else "# Benchmark results\n"
    if SECTION in current:
        before, _, after = current.partition(SECTION)
        following = after.find("\n## ")
        rest = after[following + 1 :] if following >= 0 else ""
        current = before + text.rstrip() + "\n" + ("\n" + rest if rest else "")
    else:
        current = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    results_file.write_text(current)


def startup_section(image: str | None = None) -> tuple[str, float, float, tuple[float, float] | None]:
    """The start-up part of the section: what a child's start-up is made of, real leader + child runs
    at the DAGs' default shard sizes (compiled and JIT sweeps interleaved) and two on the big grid;
    and the start-up share at the DAGs' default shard size (the worst of the DAGs) with its load average."""
    breakdown, breakdown_loads = startup_breakdown()
    # The DAGs' trigger-form defaults, read from their files; shapes they share are run once.
    defaults = {
        "shortest_path_all_pairs": dag_defaults(
            "shortest_path_all_pairs.py", "shortest_path_all_pairs", "grid", "shards"
        ),
        "batch_fanout": dag_defaults("batch_fanout_pipeline.py", "batch_fanout", "grid", "tests"),
    }
    shapes: dict[tuple[str, int], list[str]] = {}
    for dag_id, shape in defaults.items():
        shapes.setdefault(shape, []).append(dag_id)
    default_runs = {shape: child_runs(shape[0], 1, shape[1], kernels=("auto", "jit")) for shape in shapes}
    big = [child_runs("512x512", 1, 1, origins=count)["auto"] for count in ("64", "2")]
    lines = [
        "| child | origins | engine and kernels | wall | work (its own figure) | start-up share (range) | CPU time "
        "| peak RSS | leader wall, peak RSS | load avg |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(label: str, runs: list[ChildRun]) -> str:
        run = median_run(runs)
        low, high = min(r.share for r in runs), max(r.share for r in runs)
        loads = f"{min(r.load for r in runs):.1f}-{max(r.load for r in runs):.1f}"
        return (
            f"| {label}: grid {run.grid}, {run.shards} shards, shard 0 | {run.origins:,} | "
            f"{run.kernels or run.engine} | {run.wall:.2f} s | {run.work:.2f} s | **{run.share:.0%}** ({run.start_up:.2f} s; "
            f"{low:.0%}-{high:.0%}) | {run.cpu:.2f} s | {run.peak_kib / 1024:.0f} MiB | {run.leader_wall:.2f} s, "
            f"{run.leader_peak_kib / 1024:.0f} MiB | {loads} |"
        )

    shares: list[tuple[float, float]] = []
    for shape, dag_ids in shapes.items():
        names = " and ".join(f"`{dag_id}`" for dag_id in dag_ids)
        lines.append(row(f"{names} default", default_runs[shape]["auto"]))
        lines.append(
            row(f"{names} default, JIT sweep (BATCH_FANOUT_KERNELS=jit)", default_runs[shape]["jit"])
        )
        chosen = median_run(default_runs[shape]["auto"])
        shares.append((chosen.share, chosen.load))
    for runs in big:
        lines.append(row("big grid", runs))
    image_note = ""
    image_shares: list[tuple[float, float]] = []
    if image:
        for shape, dag_ids in shapes.items():
            names = " and ".join(f"`{dag_id}`" for dag_id in dag_ids)
            image_runs, podman_walls = image_child_runs(image, *shape)
            lines.append(row(f"{names} default, in the image", image_runs["auto"]))
            lines.append(row(f"{names} default, in the image, JIT sweep", image_runs["jit"]))
            image_note += (
                f" In `{image}` the child's wall is timed inside the container by the same launcher; the whole "
                f"`podman run` of {shape[0]}, {shape[1]} shards, compiled sweep, took "
                f"{statistics.median(podman_walls['auto']):.2f} s (median; {min(podman_walls['auto']):.2f}-"
                f"{max(podman_walls['auto']):.2f} s), container set-up and removal included."
            )
            chosen = median_run(image_runs["auto"])
            image_shares.append((chosen.share, chosen.load))
    worst, worst_load = max(shares)
    in_image = max(image_shares) if image_shares else None
    image_target = (
        f"; **{in_image[0]:.0%}** ({'met' if in_image[0] <= STARTUP_TARGET else 'not met'}) in the shortest-path image"
        if in_image
        else ""
    )
    parts = "\n".join(f"| {name} | {seconds:.3f} s |" for name, seconds in breakdown)
    text = f"""Start-up of a fresh job process (import + every numba kernel the job uses, JIT): {{cold}}.

What a child's start-up is made of: a fresh interpreter timing each step in the order the child meets
them (median of {CHILD_REPEATS}, load average {min(breakdown_loads):.1f}-{max(breakdown_loads):.1f}):

| step | seconds |
| --- | ---: |
{parts}

Loading one numba kernel, even from its cache, imports numba and builds its whole compilation context
(every typing and lowering registry, LLVM, and scipy's BLAS bindings, as scipy is installed here): most
of a child's start-up, and several times the work of a small shard. `make setup` therefore compiles the
PHAST sweep ahead of time (`numba.pycc`, generic x86-64) into the virtual environment
(`batch_fanout_job/compiled_kernels.py`); a child that finds it for its kernel source never imports
numba and gives the same distances (tests compare them); its time per origin is in the tables above,
beside the JIT sweep's (its code is for a generic x86-64, the JIT's for this host), and a child's CPU
time is in the table below (on this shared machine a child's wall time varies with the others' load
far more than with its kernels). A numpy PHAST over rank-ordered levels (every level one vectorised
gather/reduce, 64 origins a sweep) was exact but 4-6x slower per origin than the kernel on the 64x64
and 192x192 grids, more than the start-up it saves on a shard of 1,000 origins, so it was not kept.
The shortest-path image compiles the same sweep in a build stage (`--image` runs its child too). A warm
interpreter kept by the local endpoint (numba loaded once, each job forked from it) would have saved
more, but only locally, and each attempt would no longer be a fresh process with its own environment,
working folder and interpreter state, as a container is; the compiled sweep keeps that contract. The work of
the old `shortest_path_all_pairs` default (64x64, 4 shards: 1,005 origins, 0.04-0.1 s) is smaller than
any Python start-up (numpy's import alone: the table above), so that DAG's default grid is now
192x192, as `batch_fanout`'s.

Real leader + shortest-path child (shard 0), as the local endpoint runs them, {CHILD_REPEATS} runs each
(compiled and JIT sweeps in turn, the leader once); start-up share = (wall - the work time the child
reports) / wall, the run of median share shown, the range beside it; CPU time is the child's user +
system time, start-up included.{image_note}

{chr(10).join(lines)}

Target: start-up at most {STARTUP_TARGET:.0%} of a child's wall at the DAGs' default shard sizes:
**{worst:.0%}** ({"met" if worst <= STARTUP_TARGET else "not met"}) with the compiled sweep of `make setup`{image_target}.
"""
    return text, worst, worst_load, in_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="512x512")
    parser.add_argument("--edge-probability", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sources", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, help="write the figures into this RESULTS.md")
    parser.add_argument(
        "--startup-only", action="store_true", help="only the start-up figures (not written to RESULTS.md)"
    )
    parser.add_argument(
        "--image",
        default="auto",
        help=f"also run the child in this built shortest-path image (podman); auto: {DEFAULT_IMAGE} when "
        "it is built, none: not at all",
    )
    args = parser.parse_args()
    if args.startup_only:
        if args.results:
            raise SystemExit("--startup-only prints part of the section: it cannot write --results")
        cold, warm = cold_start()
        startup, worst, load, in_image = startup_section(resolve_image(args.image))
        print(startup.replace("{cold}", f"{cold:.2f} s with an empty cache, {warm:.2f} s warm"))
        print(target_line(worst, load))
        if in_image:
            print(target_line(*in_image, where="shortest-path image child"))
        return 0
    rows, columns = (int(part) for part in args.grid.split("x"))
    rome99 = ROME99
    if not rome99.is_file():
        raise SystemExit(f"rome99.gr not found at {rome99} (it is kept in the repository)")

    binary = ensure_boost()
    cold, warm = cold_start()
    warm_up()
    ch.warm_up()
    grid = generate_road_grid(rows, columns, args.edge_probability, args.seed).graph
    grid_figures = measure_graph(
        f"Grid {args.grid}, edge probability {args.edge_probability}, seed {args.seed}, largest connected part, "
        "integer costs 1..1000 drawn for each direction",
        grid, binary, sources_count=args.sources, repeats=args.repeats, seed=args.seed,
    )  # fmt: skip
    road = read_dimacs(rome99.read_bytes(), str(rome99)).graph
    rome_figures = measure_graph(
        "rome99 (DIMACS, Rome road network)", road, binary,
        sources_count=min(args.sources * 4, road.node_count), repeats=args.repeats, seed=args.seed,
    )  # fmt: skip
    startup, worst, load, in_image = startup_section(resolve_image(args.image))
    phast_ratio = statistics.median(grid_figures.ratios["phast"])
    kernel_ratio = statistics.median(grid_figures.ratios["kernel"])
    dense_gb = grid.node_count**2 * 8 / 1e9
    startup = startup.replace(
        "{cold}",
        f"{cold:.2f} s with an empty cache (compiling), {warm:.2f} s with the cache warm (`cache=True`)",
    )
    text = f"""{SECTION}

`benchmarks/shortest_path.py` on {platform.machine()}, {os.cpu_count()} CPUs, {time.strftime("%Y-%m-%d %H:%M")}
UTC; {versions()}. The load average (1 min) of the shared machine is given beside every figure: on a
busy machine every engine slows, the ratios less so.

{graph_section(grid_figures)}
{graph_section(rome_figures)}
Targets on the grid: PHAST per origin at most 0.5x Boost CSR Dijkstra: **{phast_ratio:.2f}x**; the Dijkstra
kernel no slower than Boost: **{kernel_ratio:.2f}x**. Dijkstra stays the fallback: the leader builds
the hierarchy only when the largest shard has at least {ch.BREAK_EVEN_ORIGINS} origins (about the
break-even above), so small shards and few origins never wait for a build that would not pay.

{startup}
Memory of a child is the graph, its hierarchy and {ch.SWEEP_WIDTH} distance rows, whatever the shard
size; a dense all-pairs matrix of the big grid would take {dense_gb:,.0f} GB.
"""
    print("\n".join(kernel_target_lines(f"grid {args.grid}", grid_figures, rome_figures)))
    print(text)
    if args.results:
        write_section(args.results, text)
    if in_image:
        print(target_line(*in_image, where="shortest-path image child"))
    print(target_line(worst, load))
    return 0


def resolve_image(image: str) -> str | None:
    """The image ``--image`` names: ``auto`` is :data:`DEFAULT_IMAGE` where podman has it, else none."""
    if image == "none":
        return None
    if image != "auto":
        return image
    from batch_fanout.images.engine import ContainerEngine, EngineError

    try:
        present = ContainerEngine.detect("podman").image_exists(DEFAULT_IMAGE)
    except EngineError:
        present = False
    if not present:
        print(f"{DEFAULT_IMAGE} is not built (make images): its child is not measured", file=sys.stderr)
    return DEFAULT_IMAGE if present else None


def target_line(share: float, load: float, where: str = "child") -> str:
    """The line ``make bench``'s summary collects (the process runtime's: last of the script's output)."""
    return (
        f"TARGET {where} start-up share at default shard size: {share:.0%} (target <= {STARTUP_TARGET:.0%}) "
        f"(load {load:.1f})"
    )


if __name__ == "__main__":
    sys.exit(main())
