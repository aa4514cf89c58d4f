"""The shortest-path child, run as an AWS Batch array child after a real leader."""

from __future__ import annotations

import io
import json

import networkx as nx
import numpy as np
import pytest

from batch_fanout_job.errors import EXIT_BAD_INPUT

# Node 6 is reachable from nobody; 1 -> 2 has a cheaper duplicate arc.
GRAPH = "p sp 6 8\na 1 2 9\na 1 2 2\na 2 3 1\na 3 4 7\na 2 4 10\na 4 5 1\na 5 1 3\na 6 1 1\n"


def reference_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(1, 7))
    for line in GRAPH.splitlines()[1:]:
        _, a, b, w = line.split()
        if not graph.has_edge(int(a), int(b)) or graph[int(a)][int(b)]["weight"] > int(w):
            graph.add_edge(int(a), int(b), weight=int(w))
    return graph


@pytest.fixture
def planned_run(run_job, run_store, leader_command, batch_env, tmp_path):
    uri, prefix, folder = run_store
    graph_file = tmp_path / "six.gr"
    graph_file.write_text(GRAPH)
    result = run_job(
        "leader",
        leader_command(workloads="shortest_path", graph=str(graph_file), shards="2"),
        batch_env(uri, prefix),
    )
    assert result.returncode == 0, result.stderr
    return uri, prefix, folder


def test_children_write_per_origin_figures_equal_to_networkx(planned_run, run_job, batch_env) -> None:
    uri, prefix, folder = planned_run
    reference = reference_graph()
    for index in range(2):
        result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=index))
        assert result.returncode == 0, result.stderr
    origins_seen = []
    for index in range(2):
        output = json.loads((folder / "shortest_paths" / f"{index}.json").read_text())
        assert output["shard"] == index and output["paths"] == []
        # Shards of three origins: the leader built no hierarchy, the children ran Dijkstra.
        assert output["engine"] == "dijkstra"
        for position, origin in enumerate(output["origins"]):
            lengths = nx.single_source_dijkstra_path_length(reference, origin)
            assert output["reachable"][position] == len(lengths)
            assert output["distance_sum"][position] == sum(lengths.values())
            assert output["eccentricity"][position] == max(lengths.values())
            expected = nx.closeness_centrality(reference.reverse(), u=origin, distance="weight")
            assert output["closeness"][position] == pytest.approx(expected)
            origins_seen.append(origin)
        assert not (folder / "shortest_paths" / f"{index}.npz").exists()
    assert origins_seen == [1, 2, 3, 4, 5, 6]
    assert not (folder / "graph" / "hierarchy.npz").exists()


@pytest.fixture
def planned_grid_run(run_job, run_store, leader_command, batch_env):
    """A generated grid with every origin in one shard: large enough for the leader to build the
    contraction hierarchy."""
    uri, prefix, folder = run_store
    command = leader_command(workloads="shortest_path", grid="40x40", seed="3", shards="1", origins="all")
    result = run_job("leader", command, batch_env(uri, prefix), timeout=120)
    assert result.returncode == 0, result.stderr
    return uri, prefix, folder


def test_leader_builds_the_hierarchy_and_children_answer_exactly_from_it(
    planned_grid_run, run_job, batch_env
) -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    uri, prefix, folder = planned_grid_run
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["graph"]["hierarchy"]
    assert entry["file"] == "graph/hierarchy.npz" and (folder / entry["file"]).is_file()
    result = run_job(
        "shortest_path", ["--paths-for", "1"], batch_env(uri, prefix, array_index=0), timeout=120
    )
    assert result.returncode == 0, result.stderr
    output = json.loads((folder / "shortest_paths" / "0.json").read_text())
    assert output["engine"] == "phast"
    with np.load(folder / "graph" / "graph.npz") as archive:
        count = archive["indptr"].shape[0] - 1
        matrix = csr_matrix(
            (archive["weights"].astype(float), archive["indices"], archive["indptr"]), shape=(count, count)
        )
    assert output["origins"] == list(range(1, count + 1))
    rows = dijkstra(matrix)
    finite = np.where(np.isfinite(rows), rows, 0)
    assert output["reachable"] == np.isfinite(rows).sum(axis=1).tolist()
    assert output["distance_sum"] == finite.sum(axis=1).astype(np.int64).tolist()
    assert output["eccentricity"] == finite.max(axis=1).astype(np.int64).tolist()
    # The path of --paths-for comes from Dijkstra's tree: its cost is the farthest distance.
    (path,) = output["paths"]
    assert path["cost"] == output["eccentricity"][0] and path["nodes"][0] == 1


def test_rewritten_hierarchy_fails_the_child(planned_grid_run, run_job, batch_env) -> None:
    uri, prefix, folder = planned_grid_run
    (folder / "graph" / "hierarchy.npz").write_bytes(b"not an archive")
    result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 1
    assert "hierarchy.npz does not match the sha256 in the manifest" in result.stderr


def test_paths_for_prints_paths_and_writes_full_rows(planned_run, run_job, batch_env) -> None:
    uri, prefix, folder = planned_run
    result = run_job("shortest_path", ["--paths-for", "1,2:1,6:3"], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 0, result.stderr
    # Farthest from 1 is 5 (via 4 at 2+1+7=10, cheaper than 1->2->4 = 12); 2 -> 1 goes round through 3, 4, 5.
    assert "Path from 1 to 5. Cost: 11\n1 -> 2 -> 3 -> 4 -> 5" in result.stdout
    assert "Path from 2 to 1. Cost: 12\n2 -> 3 -> 4 -> 5 -> 1" in result.stdout
    output = json.loads((folder / "shortest_paths" / "0.json").read_text())
    assert [(p["origin"], p["target"], p["cost"]) for p in output["paths"]] == [(1, 5, 11), (2, 1, 12)]
    with np.load(io.BytesIO((folder / "shortest_paths" / "0.npz").read_bytes())) as rows:
        assert list(rows["origins"]) == [1, 2]
        assert rows["distances"].tolist() == [[0, 2, 3, 10, 11, -1], [12, 0, 1, 8, 9, -1]]
        assert rows["predecessors"][0].tolist() == [0, 1, 2, 3, 4, 0]
    other = run_job("shortest_path", ["--paths-for", "1,2:1,6:3"], batch_env(uri, prefix, array_index=1))
    assert "Path from 6 to 3. Cost: 4\n6 -> 1 -> 2 -> 3" in other.stdout


@pytest.mark.parametrize(
    ("paths_for", "message"),
    [
        ("9", "--paths-for: 9 is not a node of the graph (ids 1..6)"),
        ("1:x", "'1:x' is not ORIGIN or ORIGIN:TARGET"),
    ],
)
def test_bad_paths_for_is_refused(planned_run, run_job, batch_env, paths_for, message) -> None:
    uri, prefix, folder = planned_run
    result = run_job("shortest_path", ["--paths-for", paths_for], batch_env(uri, prefix, array_index=0))
    assert result.returncode == EXIT_BAD_INPUT and message in result.stderr
    assert not (folder / "shortest_paths").exists()


def test_index_past_the_shard_plan(planned_run, run_job, batch_env) -> None:
    uri, prefix, _ = planned_run
    result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=2))
    assert result.returncode == 1
    assert "logical index 2 is past the end of the shard plan (2 items)" in result.stderr


def test_corrupt_graph_archive_fails_the_child(planned_run, run_job, batch_env) -> None:
    uri, prefix, folder = planned_run
    (folder / "graph" / "graph.npz").write_bytes(b"not an archive")
    result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 1 and "does not match the sha256 in the manifest" in result.stderr


def test_run_without_a_shard_plan_is_refused(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"workloads": ["stress"], "array_sizes": {"stress": 2}}))
    result = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 1 and "plans no shortest-path shards" in result.stderr


def test_injected_failure_fails_the_first_try_only(planned_run, run_job, batch_env) -> None:
    uri, prefix, folder = planned_run
    environ = batch_env(uri, prefix, array_index=1, extra={"BATCH_FANOUT_FAIL_ONCE": "1"})
    first = run_job("shortest_path", ["--paths-for", "none"], environ)
    assert first.returncode == 3 and "injected failure" in first.stderr
    assert not (folder / "shortest_paths" / "1.json").exists()
    assert run_job("shortest_path", ["--paths-for", "none"], environ).returncode == 0
    assert json.loads((folder / "shortest_paths" / "1.json").read_text())["origins"] == [4, 5, 6]
