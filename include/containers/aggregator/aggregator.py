"""Aggregator job: checks that the run's outputs are complete and writes its report.

It reads ``manifest.json`` and every output it plans (``stress/<i>.json``, ``shortest_paths/<j>.json``).
A missing or corrupt output fails the job, naming each, unless ``--tolerated-failures N`` allows up to
N of them, in which case the report says what is missing. It writes ``report/stress.csv``,
``report/shortest_paths.csv``, PNG plots, a self-contained ``report/report.html`` (plots inlined) and,
last, ``report/report.json``; its last line of output is the URI of ``report/report.html``.

``report.json`` keeps what a retried child cannot change (``summary``, ``shortest_paths``) apart from
measurements (``stress``, bogo-ops vary from run to run) and volatile run data (``runtime``).

Run as AWS Batch runs it::

    RESULTS_URI=file:///tmp/results RUN_PREFIX=demo/run1 python -m aggregator --tolerated-failures 0
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch_fanout_job.errors import BadInputError, JobError
from batch_fanout_job.plan import shard_origins
from batch_fanout_job.runtime import log_event, parse_optional, run_cli
from batch_fanout_job.store import RunStore

JOB = "aggregator"
REPORT_FOLDER = "report"
TOP_CENTRAL = 20
STRESS_COLUMNS = [
    "index",
    "method",
    "stressors",
    "bogo_ops",
    "bogo_ops_per_second_real",
    "bogo_ops_per_second_usr_sys",
    "wall_clock_seconds",
    "user_seconds",
    "system_seconds",
    "max_rss_kb",
    "stress_ng_version",
]
PATH_COLUMNS = ["origin", "shard", "reachable", "distance_sum", "eccentricity", "closeness"]


@dataclass
class Collected:
    """What the aggregator found: valid outputs by index, and the problems of the others."""

    stress: dict[int, dict[str, Any]] = field(default_factory=dict)
    shards: dict[int, dict[str, Any]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def indices_with(self, workload: str, kind: str) -> list[int]:
        return sorted(p["index"] for p in self.problems if p["workload"] == workload and p["kind"] == kind)


# --- validation (pure) ---------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    # JSON's true and false load as bool, a subclass of int: neither is a count or a distance.
    return isinstance(value, int) and not isinstance(value, bool)


def check_manifest(manifest: Any, uri: str) -> None:
    """Refuse a manifest whose plan does not hold together, before any output is judged by it.

    :param manifest: the parsed ``manifest.json``.
    :param uri: its URI for the message.
    :raises JobError: naming what disagrees.
    """
    if not isinstance(manifest, dict) or not isinstance(manifest.get("array_sizes"), dict):
        raise JobError(f"{uri} is not a leader manifest (no array_sizes)")
    sizes = manifest["array_sizes"]
    for workload in ("stress", "shortest_path"):
        if not _is_int(sizes.get(workload, 0)) or sizes.get(workload, 0) < 0:
            raise JobError(f"{uri}: array_sizes.{workload} is {sizes.get(workload)!r}, not a count")
    stress_size = sizes.get("stress", 0)
    for key in ("tests", "methods"):
        listed = manifest.get(key, [])
        if not isinstance(listed, list) or len(listed) != stress_size:
            raise JobError(f"{uri}: {key} does not list one entry per stress test ({stress_size})")
    shard_size = sizes.get("shortest_path", 0)
    if shard_size:
        shards = manifest.get("shards")
        if not isinstance(shards, list) or len(shards) != shard_size:
            raise JobError(f"{uri}: shards does not list one entry per shard ({shard_size})")
        graph = manifest.get("graph")
        if not isinstance(graph, dict) or not isinstance(graph.get("sha256"), str):
            raise JobError(f"{uri}: graph.sha256 is missing, so no shard output can be matched to the graph")
        for key in ("nodes", "max_cost"):
            if not _is_int(graph.get(key)) or graph[key] < 0:
                raise JobError(f"{uri}: graph.{key} is {graph.get(key)!r}, not a count")


def check_stress_output(document: Any, index: int, manifest: Mapping[str, Any]) -> str | None:
    """Why ``stress/<index>.json`` is not a valid output of this run, or None."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("index") != index or not _is_int(document.get("index")):
        return f"holds index {document.get('index')!r}, expected {index}"
    expected_method = manifest["methods"][index]
    if document.get("method") != expected_method:
        return f"holds method {document.get('method')!r}, the manifest plans {expected_method!r}"
    expected_line = manifest["tests"][index]
    if document.get("line") != expected_line:
        return (
            f"ran test line {document.get('line')!r}, the manifest plans {expected_line!r} (an older plan?)"
        )
    metrics = document.get("metrics")
    if not isinstance(metrics, dict):
        return "has no metrics"
    rate = metrics.get("bogo_ops_per_second_real")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not math.isfinite(rate) or rate < 0:
        return "has no finite, non-negative metrics.bogo_ops_per_second_real"
    return None


def check_shard_output(
    document: Any, index: int, planned: Sequence[int], graph: Mapping[str, Any]
) -> str | None:
    """Why ``shortest_paths/<index>.json`` is not a valid output of this run, or None.

    Every figure is checked against what the graph allows, so that a wrapped or forged value is
    refused rather than reported: ``1 <= reachable <= nodes``, ``0 <= eccentricity <= (nodes - 1) x
    max cost``, ``eccentricity <= distance_sum <= (reachable - 1) x eccentricity`` (when more than the
    origin is reached; both are 0 otherwise), closeness in [0, 1].

    :param document: the parsed output.
    :param index: its shard index.
    :param planned: the shard's origins in the manifest.
    :param graph: the manifest's graph entry (``sha256``, ``nodes``, ``max_cost``).
    """
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("shard") != index or not _is_int(document.get("shard")):
        return f"holds shard {document.get('shard')!r}, expected {index}"
    if document.get("graph_sha256") != graph["sha256"]:
        return (
            f"was computed on graph sha256 {document.get('graph_sha256')!r}, not this run's "
            f"{graph['sha256']} (an output of an older plan?)"
        )
    if document.get("origins") != list(planned):
        return "its origins differ from the shard plan in the manifest"
    count = len(planned)
    for column in ("reachable", "distance_sum", "eccentricity", "closeness"):
        values = document.get(column)
        if not isinstance(values, list) or len(values) != count:
            return f"column {column} does not have {count} values, one per origin"
    for column in ("reachable", "distance_sum", "eccentricity"):
        if not all(_is_int(value) for value in document[column]):
            return f"column {column} holds a value that is not an integer"
    if not all(
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        for value in document["closeness"]
    ):
        return "column closeness holds a non-numeric value"
    nodes, max_cost = graph["nodes"], graph["max_cost"]
    rows = zip(
        planned,
        document["reachable"],
        document["distance_sum"],
        document["eccentricity"],
        document["closeness"],
        strict=True,
    )
    for origin, reachable, total, farthest, closeness in rows:
        if not 1 <= reachable <= nodes:
            return f"origin {origin}: reachable {reachable} is not in 1..{nodes} (the graph's nodes)"
        if not 0 <= farthest <= (nodes - 1) * max_cost:
            return (
                f"origin {origin}: eccentricity {farthest} is not in 0..{(nodes - 1) * max_cost} "
                "((nodes - 1) x max cost)"
            )
        low, high = (farthest, (reachable - 1) * farthest) if reachable > 1 else (0, 0)
        if not low <= total <= high:
            return (
                f"origin {origin}: distance_sum {total} is not in {low}..{high} (eccentricity .. "
                "(reachable - 1) x eccentricity)"
            )
        if not 0.0 <= closeness <= 1.0:
            return f"origin {origin}: closeness {closeness} is not in [0, 1]"
    return None


def collect(store: RunStore, manifest: Mapping[str, Any]) -> Collected:
    """Read and check every output the manifest plans (:func:`check_manifest` has passed)."""
    collected = Collected()
    sizes = manifest["array_sizes"]
    for index in range(sizes.get("stress", 0)):
        key = f"stress/{index}.json"
        document, problem = _read(store, key)
        problem = problem or check_stress_output(document, index, manifest)
        if problem is None:
            collected.stress[index] = document
        else:
            collected.problems.append(_problem("stress", index, key, problem, store))
    shards = manifest.get("shards", [])
    for index in range(sizes.get("shortest_path", 0)):
        key = f"shortest_paths/{index}.json"
        document, problem = _read(store, key)
        if problem is None:
            try:
                planned = [int(node) for node in shard_origins(shards[index])]
            except (JobError, TypeError, ValueError) as error:
                raise JobError(f"{store.uri('manifest.json')}: shard {index}: {error}") from error
            problem = check_shard_output(document, index, planned, manifest["graph"])
        if problem is None:
            collected.shards[index] = document
        else:
            collected.problems.append(_problem("shortest_path", index, key, problem, store))
    return collected


def _read(store: RunStore, key: str) -> tuple[Any, str | None]:
    if not store.exists(key):
        return None, "missing"
    try:
        return store.read_json(key), None
    except JobError as error:
        return None, f"corrupt: {error}"


def _problem(workload: str, index: int, key: str, problem: str, store: RunStore) -> dict[str, Any]:
    kind = "missing" if problem == "missing" else "corrupt"
    return {
        "workload": workload,
        "index": index,
        "kind": kind,
        "file": key,
        "problem": problem,
        "uri": store.uri(key),
    }


# --- the report (pure apart from matplotlib) ------------------------------------------------------------------


def stress_rows(collected: Collected) -> list[dict[str, Any]]:
    rows = []
    for index in sorted(collected.stress):
        document = collected.stress[index]
        row = {
            "index": index,
            "method": document["method"],
            "stressors": document.get("stressors"),
            "stress_ng_version": document.get("stress_ng_version"),
        }
        row.update(
            {key: document["metrics"].get(key) for key in STRESS_COLUMNS if key in document["metrics"]}
        )
        rows.append(row)
    return rows


def path_rows(collected: Collected) -> list[dict[str, Any]]:
    rows = []
    for index in sorted(collected.shards):
        document = collected.shards[index]
        for position, origin in enumerate(document["origins"]):
            rows.append(
                {
                    "origin": origin,
                    "shard": index,
                    "reachable": document["reachable"][position],
                    "distance_sum": document["distance_sum"][position],
                    "eccentricity": document["eccentricity"][position],
                    "closeness": document["closeness"][position],
                }
            )
    return rows


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "max": None, "mean": None}
    return {"min": min(values), "max": max(values), "mean": sum(values) / len(values)}


def build_report(  # noqa: PLR0917
    manifest: Mapping[str, Any],
    collected: Collected,
    tolerated: int,
    run_uri: str,
    stress: list[dict[str, Any]],
    paths: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``report.json`` document."""
    sizes = manifest.get("array_sizes", {})
    graph = manifest.get("graph") or {}
    summary: dict[str, Any] = {
        "workloads": list(manifest.get("workloads", [])),
        "complete": not collected.problems,
        "tolerated_failures": tolerated,
        "stress": {
            "tests": int(sizes.get("stress", 0)),
            "methods": list(manifest.get("methods", [])),
            "results": len(collected.stress),
            "stress_ng_versions": sorted({str(row["stress_ng_version"]) for row in stress}),
        },
        "shortest_path": {
            "origins": int((manifest.get("origins") or {}).get("count", 0)),
            "shards": int(sizes.get("shortest_path", 0)),
            "shard_results": len(collected.shards),
            "origins_with_results": len(paths),
            "graph": {
                key: graph.get(key)
                for key in ("nodes", "arcs", "input_arcs", "merged_duplicate_arcs", "source")
            }
            if graph
            else None,
        },
        "missing": {
            "stress": collected.indices_with("stress", "missing"),
            "shortest_path": collected.indices_with("shortest_path", "missing"),
        },
        "corrupt": {
            "stress": collected.indices_with("stress", "corrupt"),
            "shortest_path": collected.indices_with("shortest_path", "corrupt"),
        },
        "problems": [
            {key: problem[key] for key in ("workload", "index", "file", "problem")}
            for problem in collected.problems
        ],
    }
    central = sorted(paths, key=lambda row: (-row["closeness"], row["origin"]))[:TOP_CENTRAL]
    shortest_paths = {
        "reachable": _stats([row["reachable"] for row in paths]),
        "eccentricity": _stats([row["eccentricity"] for row in paths]),
        "closeness": _stats([row["closeness"] for row in paths]),
        "diameter_of_origins": max((row["eccentricity"] for row in paths), default=None),
        "top_central": [
            {"origin": row["origin"], "closeness": row["closeness"], "eccentricity": row["eccentricity"]}
            for row in central
        ],
        "paths": [
            path for index in sorted(collected.shards) for path in collected.shards[index].get("paths", [])
        ],
    }
    runtime = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stress_child_seconds": sum(
            float((d.get("runtime") or {}).get("seconds") or 0) for d in collected.stress.values()
        ),
        "shortest_path_child_seconds": sum(
            float((d.get("runtime") or {}).get("seconds") or 0) for d in collected.shards.values()
        ),
        "manifest_created": manifest.get("created"),
        "tool_versions": manifest.get("tool_versions"),
    }
    return {
        "run": run_uri,
        "summary": summary,
        "stress": stress,
        "shortest_paths": shortest_paths,
        "runtime": runtime,
    }


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def make_plots(stress: list[dict[str, Any]], paths: list[dict[str, Any]]) -> dict[str, bytes]:
    """PNG plots by file name: bogo-ops/s per method; eccentricity and closeness; top central nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(figure: Any) -> bytes:
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        plt.close(figure)
        return buffer.getvalue()

    plots: dict[str, bytes] = {}
    if stress:
        figure, axes = plt.subplots(figsize=(10, max(3.0, 0.25 * len(stress) + 1)))
        methods = [row["method"] for row in stress]
        axes.barh(methods, [row["bogo_ops_per_second_real"] for row in stress], color="#4472c4")
        axes.set_xscale("log")
        axes.invert_yaxis()
        axes.set_xlabel("bogo-ops/s (real time, log scale)")
        axes.set_title("stress-ng CPU methods")
        plots["stress_bogo_ops.png"] = png(figure)
    if paths:
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        left.hist([row["eccentricity"] for row in paths], bins=40, color="#4472c4")
        left.set_xlabel("eccentricity (largest distance from the origin)")
        left.set_ylabel("origins")
        right.hist([row["closeness"] for row in paths], bins=40, color="#ed7d31")
        right.set_xlabel("closeness")
        plots["shortest_paths_distribution.png"] = png(figure)
        central = sorted(paths, key=lambda row: (-row["closeness"], row["origin"]))[:TOP_CENTRAL]
        figure, axes = plt.subplots(figsize=(8, 0.3 * len(central) + 1.5))
        axes.barh(
            [str(row["origin"]) for row in central], [row["closeness"] for row in central], color="#70ad47"
        )
        axes.invert_yaxis()
        axes.set_xlabel("closeness")
        axes.set_ylabel("origin node")
        axes.set_title(f"top {len(central)} central origins")
        plots["top_central.png"] = png(figure)
    return plots


def render_html(report: Mapping[str, Any], plots: Mapping[str, bytes]) -> str:
    """A self-contained HTML page: tables and the plots inlined as base64 PNGs."""
    summary = report["summary"]

    def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
        head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_cell(row.get(column)))}</td>" for column in columns)
            + "</tr>"
            for row in rows
        )
        # Wide tables scroll inside their own box instead of widening the page.
        return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>batch-fanout report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}"
        ".bad{color:#b00}.wide{overflow-x:auto;max-width:100%}img{max-width:100%}</style></head><body>",
        f"<h1>batch-fanout report</h1><p>Run: {html.escape(report['run'])}</p>",
    ]
    if summary["problems"]:
        parts.append(
            f"<h2 class='bad'>Incomplete: {len(summary['problems'])} output(s) missing or corrupt</h2>"
        )
        parts.append(table(summary["problems"], ["workload", "index", "file", "problem"]))
    else:
        parts.append("<p>All planned outputs are present and valid.</p>")
    if "stress" in summary["workloads"]:
        stress = summary["stress"]
        parts.append(
            f"<h2>Stress tests</h2><p>{stress['results']} of {stress['tests']} tests; stress-ng "
            f"{html.escape(', '.join(stress['stress_ng_versions']))}</p>"
        )
        parts.append(table(report["stress"], STRESS_COLUMNS))
    if "shortest_path" in summary["workloads"]:
        sp = summary["shortest_path"]
        graph = sp["graph"] or {}
        parts.append(
            f"<h2>Shortest paths</h2><p>Graph: {html.escape(str(graph.get('source')))}: {graph.get('nodes')} nodes, "
            f"{graph.get('arcs')} arcs ({graph.get('merged_duplicate_arcs')} duplicate arcs merged). "
            f"{sp['origins_with_results']} of {sp['origins']} origins in {sp['shard_results']} of {sp['shards']} "
            "shards.</p>"
        )
        figures = report["shortest_paths"]
        stats_rows = [
            {"figure": name, **figures[name]} for name in ("reachable", "eccentricity", "closeness")
        ]
        parts.append(table(stats_rows, ["figure", "min", "mean", "max"]))
        parts.append("<h3>Most central origins</h3>")
        parts.append(table(figures["top_central"], ["origin", "closeness", "eccentricity"]))
        for path in figures["paths"]:
            parts.append(
                f"<p>Path from {path['origin']} to {path['target']}. Cost: {path['cost']}<br>"
                f"{html.escape(' -> '.join(str(node) for node in path['nodes']))}</p>"
            )
        parts.append("<p>Every origin: shortest_paths.csv beside this page.</p>")
    for name, data in plots.items():
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(
            f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --- the job -----------------------------------------------------------------------------------------------


def parse_tolerated(text: str | None) -> int:
    if text is None:
        return 0
    if not text.isdigit():
        raise BadInputError(f"--tolerated-failures {text!r}: expected a non-negative integer")
    return int(text)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    store = RunStore.from_environ(environ)
    # Withdraw every earlier report file first, before reading anything: whatever happens next (a bad
    # option, a missing manifest, a bad output, a crash), no report of any kind is left that looks current.
    withdrawn = store.delete_folder(REPORT_FOLDER)
    tolerated = parse_tolerated(parse_optional(args.tolerated_failures))
    manifest = store.read_json("manifest.json")
    check_manifest(manifest, store.uri("manifest.json"))
    log_event(
        JOB,
        "started",
        run=store.uri(),
        array_sizes=manifest["array_sizes"],
        tolerated=tolerated,
        withdrawn=len(withdrawn),
    )
    collected = collect(store, manifest)
    if len(collected.problems) > tolerated:
        listing = "; ".join(
            f"{p['workload']} index {p['index']} ({p['file']}): {p['problem']}" for p in collected.problems
        )
        raise JobError(
            f"{len(collected.problems)} output(s) missing or corrupt (tolerated: {tolerated}): {listing}"
        )
    # Everything is built in memory first; the writes come last, report.json the very last.
    stress, paths = stress_rows(collected), path_rows(collected)
    report = build_report(manifest, collected, tolerated, store.uri(), stress, paths)
    plots = make_plots(stress, paths)
    report["files"] = sorted(["report.json", "report.html", "stress.csv", "shortest_paths.csv", *plots])
    files: dict[str, bytes] = {
        "stress.csv": to_csv(stress, STRESS_COLUMNS).encode("utf-8"),
        "shortest_paths.csv": to_csv(paths, PATH_COLUMNS).encode("utf-8"),
        **plots,
        "report.html": render_html(report, plots).encode("utf-8"),
    }
    try:
        for name, data in files.items():
            store.write_bytes(f"{REPORT_FOLDER}/{name}", data)
        store.write_json(f"{REPORT_FOLDER}/report.json", report)
    except JobError:
        # A write failed half way: take back what was written rather than leave half a report.
        store.delete_folder(REPORT_FOLDER)
        raise
    html_uri = store.uri(f"{REPORT_FOLDER}/report.html")
    for problem in collected.problems:
        print(
            f"tolerated: {problem['workload']} index {problem['index']} ({problem['file']}): {problem['problem']}"
        )
    summary = report["summary"]
    print(
        f"stress: {summary['stress']['results']}/{summary['stress']['tests']} tests; shortest paths: "
        f"{summary['shortest_path']['origins_with_results']}/{summary['shortest_path']['origins']} origins in "
        f"{summary['shortest_path']['shard_results']}/{summary['shortest_path']['shards']} shards"
    )
    log_event(JOB, "finished", report=html_uri, complete=summary["complete"])
    print(html_uri)
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aggregator", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tolerated-failures",
        default="none",
        help="how many missing or corrupt outputs still give a report (none: 0)",
    )
    return run_cli(JOB, parser, run, argv, environ)


if __name__ == "__main__":
    sys.exit(main())
