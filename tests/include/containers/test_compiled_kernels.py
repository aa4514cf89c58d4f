"""The PHAST sweep compiled ahead of time (``numba.pycc``): built here into a temporary folder, it gives
exactly the JIT kernel's answers on random graphs (integer costs up to 10^12, zero costs, parallel arcs,
loops, disconnected parts), rome99 and a grid; a child that finds it answers without importing numba,
and an edited kernel source never runs the stale module."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_fanout_job import compiled_kernels
from batch_fanout_job.graphs import Graph, generate_road_grid, read_dimacs
from batch_fanout_job.hierarchy import Phast, build_hierarchy

CONTAINERS = Path(__file__).resolve().parents[3] / "include" / "containers"
pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="numba.pycc needs a C compiler")


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The compiled module, built into a folder of its own and first on ``sys.path``."""
    folder = tmp_path_factory.mktemp("compiled")
    built = compiled_kernels.build(folder)
    assert built.is_file() and built.parent == folder
    name = compiled_kernels.module_name()
    sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def compiled(compiled_dir: Path) -> ModuleType:
    module = compiled_kernels.load()
    assert module is not None and Path(module.__file__ or "").parent == compiled_dir
    return module


def raw_csr(nodes: int, tails: np.ndarray, heads: np.ndarray, costs: np.ndarray) -> Graph:
    """A CSR graph exactly as drawn: parallel arcs and loops kept."""
    order = np.argsort(tails, kind="stable")
    indptr = np.zeros(nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(tails, minlength=nodes), out=indptr[1:])
    return Graph(indptr, heads[order].astype(np.int32), costs[order].astype(np.int64))


def assert_same_answers(graph: Graph, origins: np.ndarray, width: int) -> None:
    hierarchy = build_hierarchy(graph.indptr, graph.indices, graph.weights)
    compiled = Phast(hierarchy, width=width)
    jit = Phast(hierarchy, width=width, kernels="jit")
    assert (compiled.kernels, jit.kernels) == ("compiled", "jit")
    for mine, theirs in zip(compiled.summaries(origins), jit.summaries(origins), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    for origin in origins[:3]:
        np.testing.assert_array_equal(compiled.distances(int(origin)), jit.distances(int(origin)))


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Graph, np.ndarray, int]:
    nodes = draw(st.integers(1, 40))
    arcs = draw(st.integers(0, 4 * nodes))
    max_cost = draw(st.sampled_from([0, 1, 3, 1000, 10**12]))
    node = st.integers(0, nodes - 1)
    tails = np.array(draw(st.lists(node, min_size=arcs, max_size=arcs)), dtype=np.int64)
    heads = np.array(draw(st.lists(node, min_size=arcs, max_size=arcs)), dtype=np.int64)
    costs = np.array(draw(st.lists(st.integers(0, max_cost), min_size=arcs, max_size=arcs)), dtype=np.int64)
    origins = np.array(draw(st.lists(node, min_size=1, max_size=9)), dtype=np.int64)
    return raw_csr(nodes, tails, heads, costs), origins, draw(st.integers(1, 5))


@settings(max_examples=60, deadline=None)
@given(case=graphs())
def test_compiled_sweep_equals_the_jit_on_random_graphs(
    compiled: ModuleType, case: tuple[Graph, np.ndarray, int]
) -> None:
    graph, origins, width = case
    assert_same_answers(graph, origins, width)


def test_compiled_sweep_on_zero_costs_duplicates_and_disconnected_parts(compiled: ModuleType) -> None:
    # 0 -> 1 twice (the cheaper, 0, counts), a zero-cost cycle 1 <-> 2, a loop, and 3-4 apart.
    tails = np.array([0, 0, 1, 2, 2, 3])
    heads = np.array([1, 1, 2, 1, 2, 4])
    costs = np.array([5, 0, 0, 0, 7, 2])
    graph = raw_csr(5, tails, heads, costs)
    assert_same_answers(graph, np.arange(5), width=4)
    reachable, distance_sum, eccentricity = Phast(
        build_hierarchy(graph.indptr, graph.indices, graph.weights)
    ).summaries(np.arange(5))
    assert reachable.tolist() == [3, 2, 2, 2, 1]
    assert distance_sum.tolist() == [0, 0, 0, 2, 0]
    assert eccentricity.tolist() == [0, 0, 0, 2, 0]


def test_compiled_sweep_on_rome99_and_a_grid(compiled: ModuleType, rome99_path: Path) -> None:
    road = read_dimacs(rome99_path.read_bytes(), str(rome99_path)).graph
    assert_same_answers(road, np.arange(0, road.node_count, 97), width=4)
    grid = generate_road_grid(30, 30, 0.7, 5).graph
    assert_same_answers(grid, np.arange(0, grid.node_count, 13), width=4)


def test_an_edited_kernel_source_never_runs_the_stale_module(
    compiled: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited = tmp_path / "hierarchy_kernels.py"
    source = Path(compiled_kernels.__file__).with_name("hierarchy_kernels.py").read_text()
    edited.write_text(source + "\n# edited\n")
    monkeypatch.setattr(compiled_kernels, "_KERNEL_SOURCE", edited)
    assert compiled_kernels.module_name() != compiled.__name__
    assert compiled_kernels.load() is None
    hierarchy = build_hierarchy(np.array([0, 1, 1]), np.array([1]), np.array([1]))
    assert Phast(hierarchy).kernels == "jit"


def test_kernel_choice_is_auto_or_jit_and_names_the_variable() -> None:
    assert compiled_kernels.kernel_choice({}) == "auto"
    assert compiled_kernels.kernel_choice({"BATCH_FANOUT_KERNELS": " JIT "}) == "jit"
    with pytest.raises(ValueError, match="BATCH_FANOUT_KERNELS='fast': expected one of auto, jit"):
        compiled_kernels.kernel_choice({"BATCH_FANOUT_KERNELS": "fast"})
    with pytest.raises(ValueError, match="kernels 'fast'"):
        Phast(build_hierarchy(np.array([0, 0]), np.array([], dtype=np.int32), np.array([])), kernels="fast")


# Runs the child as ``python -m shortest_path`` does, then says whether numba was imported.
CHILD = """
import runpy, sys
sys.argv = ["shortest_path", "--paths-for", "none"]
try:
    runpy.run_module("shortest_path", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
print("NUMBA", "numba" in sys.modules, "EXIT", code, file=sys.stderr)
"""


def test_a_child_answers_from_the_compiled_sweep_without_numba_as_the_jit_does(
    compiled_dir: Path, run_store, run_job, leader_command, batch_env
) -> None:
    uri, prefix, folder = run_store
    command = leader_command(workloads="shortest_path", grid="40x40", seed="3", shards="1", origins="all")
    assert run_job("leader", command, batch_env(uri, prefix), timeout=120).returncode == 0
    outputs = {}
    for kernels in ("auto", "jit"):
        environ = batch_env(
            uri,
            prefix,
            extra={"PYTHONPATH": str(compiled_dir), "BATCH_FANOUT_KERNELS": kernels},
        )
        child = subprocess.run(
            [sys.executable, "-c", CHILD],
            cwd=CONTAINERS / "shortest_path",
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "EXIT 0" in child.stderr, child.stderr
        started = json.loads(next(line for line in child.stderr.splitlines() if '"started"' in line))
        assert started["kernels"] == ("phast compiled" if kernels == "auto" else "phast jit")
        assert f"NUMBA {kernels == 'jit'}" in child.stderr
        output = json.loads((folder / "shortest_paths" / "0.json").read_text())
        assert output["engine"] == "phast"
        outputs[kernels] = {
            key: output[key] for key in ("origins", "reachable", "distance_sum", "eccentricity")
        }
    assert outputs["auto"] == outputs["jit"]
    assert len(outputs["auto"]["origins"]) > 1000


def test_a_bad_kernel_choice_fails_the_child_naming_the_variable(
    run_store, run_job, leader_command, batch_env
) -> None:
    uri, prefix, _ = run_store
    command = leader_command(workloads="shortest_path", grid="8x8", seed="3", shards="1", origins="all")
    assert run_job("leader", command, batch_env(uri, prefix), timeout=120).returncode == 0
    result = run_job(
        "shortest_path",
        ["--paths-for", "none"],
        batch_env(uri, prefix, extra={"BATCH_FANOUT_KERNELS": "fast"}),
    )
    assert result.returncode == 1
    assert "BATCH_FANOUT_KERNELS='fast': expected one of auto, jit" in result.stderr


def test_the_child_marks_unreachable_as_the_dijkstra_kernel_does() -> None:
    # The child keeps its own copy so that a PHAST shard never imports sssp_kernel (numba).
    import shortest_path
    import sssp_kernel

    assert shortest_path.UNREACHABLE == sssp_kernel.UNREACHABLE


def test_strict_build_fails_without_a_compiler(tmp_path: Path) -> None:
    """An image build asks for ``--strict``: no C compiler on the PATH fails it (exit 1), saying why,
    rather than leaving the image's children on the JIT."""
    empty = tmp_path / "no-compiler"
    empty.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_fanout_job.compiled_kernels",
            "--output-dir",
            str(tmp_path),
            "--strict",
            "--force",
        ],
        env={"PATH": str(empty), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "compiled kernels not built: " in done.stderr
    assert not list(tmp_path.glob(f"{compiled_kernels.PREFIX}*"))
