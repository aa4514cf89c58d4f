"""``shortest_path_all_pairs`` end to end on the real Rome road graph (kept beside the project)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import networkx as nx
import pytest


def read_dimacs(path: Path) -> nx.DiGraph:
    graph = nx.DiGraph()
    for line in path.read_text().splitlines():
        if line.startswith("a "):
            _, tail, head, cost = line.split()
            u, v, w = int(tail), int(head), int(cost)
            # Parallel arcs: the cheapest one is the road a shortest path takes.
            if not graph.has_edge(u, v) or graph[u][v]["weight"] > w:
                graph.add_edge(u, v, weight=w)
    return graph


@pytest.mark.slow
def test_all_pairs_on_rome99_match_networkx(
    project_dag: Any, run_dag: Any, pipeline_settings: str, rome99_path: Path
) -> None:
    conf = {"graph": rome99_path.as_uri(), "shards": 3, "origins": "1,100,2000", "paths_for": "1:3353"}
    dag_run = run_dag(project_dag("shortest_path_all_pairs"), conf=conf)
    assert dag_run.state == "success"

    folder = Path(urlparse(pipeline_settings).path) / dag_run.dag_id / dag_run.run_id
    report = json.loads((folder / "report" / "report.json").read_text())
    summary = report["summary"]
    assert summary["complete"] is True
    assert summary["shortest_path"]["graph"]["nodes"] == 3353
    assert summary["shortest_path"]["graph"]["merged_duplicate_arcs"] == 11
    assert summary["shortest_path"]["shards"] == summary["shortest_path"]["shard_results"] == 3
    assert summary["shortest_path"]["origins_with_results"] == 3

    graph = read_dimacs(rome99_path)
    rows = {int(row["origin"]): row for row in _csv_rows(folder / "report" / "shortest_paths.csv")}
    for origin in (1, 100, 2000):
        distances = nx.single_source_dijkstra_path_length(graph, origin)
        assert int(rows[origin]["reachable"]) == len(distances)
        assert int(rows[origin]["distance_sum"]) == sum(distances.values())
        assert int(rows[origin]["eccentricity"]) == max(distances.values())
    (path,) = report["shortest_paths"]["paths"]
    assert path["cost"] == nx.dijkstra_path_length(graph, 1, 3353)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as handle:
        return list(csv.DictReader(handle))
