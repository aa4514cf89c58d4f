"""Leader -> array children -> aggregator, each started as AWS Batch starts it, with file:// results."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import networkx as nx
import pytest

from batch_fanout_job.errors import EXIT_BAD_INPUT

STRESS_CHILDREN = 12


def read_report(folder: Path) -> dict:
    return json.loads((folder / "report" / "report.json").read_text())


def run_children(start_job, module: str, args: list[str], environ_for_index, count: int) -> None:
    """Start every child at once, as Batch does, and require each to succeed."""
    running = [start_job(module, args, environ_for_index(index), timeout=120) for index in range(count)]
    for index, job in enumerate(running):
        result = job.wait()
        assert result.returncode == 0, f"child {index}: {result.stderr}"


def check_html_is_self_contained(folder: Path) -> None:
    page = (folder / "report" / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert images and all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert not re.search(r"src='(?!data:)", page)


@pytest.mark.slow
def test_stress_flow_leader_twelve_children_aggregator(
    run_job, start_job, run_store, leader_command, batch_env
) -> None:
    uri, prefix, folder = run_store
    leader = run_job(
        "leader",
        leader_command(workloads="stress", tests=str(STRESS_CHILDREN), stress_duration="1", stress_cpus="1"),
        batch_env(uri, prefix),
    )
    assert leader.returncode == 0, leader.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["array_sizes"]["stress"] == STRESS_CHILDREN
    run_children(
        start_job, "stress_follower", [], lambda i: batch_env(uri, prefix, array_index=i), STRESS_CHILDREN
    )

    result = run_job("aggregator", ["--tolerated-failures", "none"], batch_env(uri, prefix))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{uri}/{prefix}/report/report.html"
    report = read_report(folder)
    summary = report["summary"]
    assert summary["complete"] is True
    assert summary["stress"]["tests"] == STRESS_CHILDREN and summary["stress"]["results"] == STRESS_CHILDREN
    assert summary["stress"]["methods"] == manifest["methods"]
    assert summary["missing"] == {"stress": [], "shortest_path": []}
    assert [row["method"] for row in report["stress"]] == manifest["methods"]
    with (folder / "report" / "stress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == manifest["methods"]
    assert all(float(row["bogo_ops_per_second_real"]) > 0 for row in rows)
    assert (folder / "report" / "stress_bogo_ops.png").read_bytes().startswith(b"\x89PNG")
    check_html_is_self_contained(folder)


@pytest.mark.slow
def test_shortest_path_flow_on_rome99(  # noqa: PLR0917
    run_job, start_job, run_store, leader_command, batch_env, rome99_path: Path
) -> None:
    uri, prefix, folder = run_store
    leader = run_job(
        "leader",
        leader_command(workloads="shortest_path", graph=str(rome99_path), shards="3", origins="all"),
        batch_env(uri, prefix),
    )
    assert leader.returncode == 0, leader.stderr
    run_children(
        start_job, "shortest_path", ["--paths-for", "1"], lambda i: batch_env(uri, prefix, array_index=i), 3
    )
    result = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
    assert result.returncode == 0, result.stderr
    summary = read_report(folder)["summary"]
    assert summary["shortest_path"]["origins"] == 3353 and summary["shortest_path"]["shards"] == 3
    assert summary["shortest_path"]["origins_with_results"] == 3353
    assert (
        summary["shortest_path"]["graph"]["nodes"] == 3353
        and summary["shortest_path"]["graph"]["arcs"] == 8859
    )
    assert summary["shortest_path"]["graph"]["merged_duplicate_arcs"] == 11
    with (folder / "report" / "shortest_paths.csv").open() as handle:
        rows = {int(row["origin"]): row for row in csv.DictReader(handle)}
    assert sorted(rows) == list(range(1, 3354))
    reference = nx.DiGraph()
    for line in rome99_path.read_text().splitlines():
        if line.startswith("a "):
            _, a, b, w = line.split()
            if not reference.has_edge(int(a), int(b)) or reference[int(a)][int(b)]["weight"] > int(w):
                reference.add_edge(int(a), int(b), weight=int(w))
    for origin in (1, 1500, 3353):
        lengths = nx.single_source_dijkstra_path_length(reference, origin)
        assert int(rows[origin]["distance_sum"]) == sum(lengths.values())
        assert int(rows[origin]["eccentricity"]) == max(lengths.values())
    paths = read_report(folder)["shortest_paths"]["paths"]
    assert len(paths) == 1 and paths[0]["origin"] == 1
    assert paths[0]["cost"] == nx.dijkstra_path_length(reference, 1, paths[0]["target"])
    for name in ("shortest_paths_distribution.png", "top_central.png"):
        assert (folder / "report" / name).read_bytes().startswith(b"\x89PNG")
    check_html_is_self_contained(folder)


def plan_grid_run(run_job, leader_command, batch_env, uri: str, prefix: str) -> None:
    leader = run_job(
        "leader",
        leader_command(
            workloads="shortest_path",
            graph="generate",
            grid="24x24",
            edge_probability="0.7",
            seed="7",
            shards="3",
        ),
        batch_env(uri, prefix),
    )
    assert leader.returncode == 0, leader.stderr


@pytest.mark.slow
def test_report_is_the_same_when_a_child_was_retried(
    run_job,
    start_job,
    run_store,
    leader_command,
    batch_env,
) -> None:
    uri, _, _ = run_store
    root = Path(uri.removeprefix("file://"))
    plain, retried = "grid/plain", "grid/retried"
    for prefix in (plain, retried):
        plan_grid_run(run_job, leader_command, batch_env, uri, prefix)
    run_children(
        start_job, "shortest_path", ["--paths-for", "5"], lambda i: batch_env(uri, plain, array_index=i), 3
    )

    fail_once = {"BATCH_FANOUT_FAIL_ONCE": "1"}
    first_try = [
        start_job(
            "shortest_path", ["--paths-for", "5"], batch_env(uri, retried, array_index=i, extra=fail_once)
        )
        for i in range(3)
    ]
    codes = [job.wait().returncode for job in first_try]
    assert codes == [0, 3, 0]
    incomplete = run_job("aggregator", ["--tolerated-failures", "none"], batch_env(uri, retried))
    assert incomplete.returncode == 1
    assert "shortest_path index 1 (shortest_paths/1.json): missing" in incomplete.stderr
    # The provider retries only the failed child: a plain job mapped to logical index 1.
    retry = run_job(
        "shortest_path",
        ["--paths-for", "5"],
        batch_env(uri, retried, extra={**fail_once, "BATCH_FANOUT_INDEX_MAP": "1"}),
    )
    assert retry.returncode == 0, retry.stderr

    for prefix in (plain, retried):
        assert run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix)).returncode == 0
    plain_report, retried_report = (read_report(root / prefix) for prefix in (plain, retried))
    for section in ("summary", "shortest_paths", "stress"):
        assert plain_report[section] == retried_report[section]
    assert (root / plain / "report" / "shortest_paths.csv").read_bytes() == (
        root / retried / "report" / "shortest_paths.csv"
    ).read_bytes()
    assert plain_report["summary"]["shortest_path"]["shards"] == 3


@pytest.mark.slow
def test_aggregator_names_missing_and_corrupt_outputs(
    run_job, start_job, run_store, leader_command, batch_env
) -> None:
    uri, prefix, folder = run_store
    plan_grid_run(run_job, leader_command, batch_env, uri, prefix)
    run_children(
        start_job,
        "shortest_path",
        ["--paths-for", "none"],
        lambda i: batch_env(uri, prefix, array_index=i),
        3,
    )
    assert run_job("aggregator", ["--tolerated-failures", "none"], batch_env(uri, prefix)).returncode == 0
    assert (folder / "report" / "report.json").exists()

    (folder / "shortest_paths" / "0.json").unlink()
    (folder / "shortest_paths" / "2.json").write_text('{"shard": 2, "origins": [')
    failed = run_job("aggregator", ["--tolerated-failures", "1"], batch_env(uri, prefix))
    assert failed.returncode == 1
    assert "2 output(s) missing or corrupt (tolerated: 1)" in failed.stderr
    assert "shortest_path index 0 (shortest_paths/0.json): missing" in failed.stderr
    assert "shortest_path index 2 (shortest_paths/2.json): corrupt" in failed.stderr
    assert not (folder / "report" / "report.json").exists()  # the earlier report is withdrawn

    tolerated = run_job("aggregator", ["--tolerated-failures", "2"], batch_env(uri, prefix))
    assert tolerated.returncode == 0, tolerated.stderr
    summary = read_report(folder)["summary"]
    assert summary["complete"] is False
    assert summary["missing"]["shortest_path"] == [0] and summary["corrupt"]["shortest_path"] == [2]
    assert summary["shortest_path"]["shard_results"] == 1
    page = (folder / "report" / "report.html").read_text()
    assert "Incomplete: 2 output(s) missing or corrupt" in page


def test_aggregator_refuses_an_output_of_another_plan(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    (folder / "stress").mkdir(parents=True)
    manifest = {
        "workloads": ["stress"],
        "array_sizes": {"stress": 2, "shortest_path": 0},
        "methods": ["fft", "pi"],
        "tests": ["--cpu 1 --cpu-method fft -t 1s", "--cpu 1 --cpu-method pi -t 1s"],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    good = {
        "index": 0,
        "method": "fft",
        "line": "--cpu 1 --cpu-method fft -t 1s",
        "metrics": {"bogo_ops_per_second_real": 5.0},
    }
    (folder / "stress" / "0.json").write_text(json.dumps(good))
    (folder / "stress" / "1.json").write_text(json.dumps({**good, "index": 1}))
    result = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
    assert result.returncode == 1
    assert "stress index 1 (stress/1.json): holds method 'fft', the manifest plans 'pi'" in result.stderr

    # The right method but the line of an older plan (another duration) is refused as well.
    older = {**good, "index": 1, "method": "pi", "line": "--cpu 1 --cpu-method pi -t 9s"}
    (folder / "stress" / "1.json").write_text(json.dumps(older))
    result = run_job("aggregator", ["--tolerated-failures", "0"], batch_env(uri, prefix))
    assert result.returncode == 1
    assert "stress index 1 (stress/1.json): ran test line '--cpu 1 --cpu-method pi -t 9s'" in result.stderr


def test_aggregator_without_a_manifest_fails(run_job, run_store, batch_env) -> None:
    uri, prefix, _ = run_store
    result = run_job("aggregator", ["--tolerated-failures", "none"], batch_env(uri, prefix))
    assert result.returncode == 1 and "manifest.json does not exist" in result.stderr
    bad = run_job("aggregator", ["--tolerated-failures", "some"], batch_env(uri, prefix))
    assert bad.returncode == EXIT_BAD_INPUT and "--tolerated-failures 'some'" in bad.stderr


def test_results_store_is_not_left_with_temporary_files(
    run_job, run_store, leader_command, batch_env
) -> None:
    uri, prefix, folder = run_store
    assert (
        run_job(
            "leader", leader_command(workloads="shortest_path", grid="6x6", seed="1"), batch_env(uri, prefix)
        ).returncode
        == 0
    )
    assert not [path for path in folder.rglob("*") if path.name.endswith(".tmp")]
