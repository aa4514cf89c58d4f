"""Reading a run's report: the headlines a person wants first, and where the report is.

The aggregator job writes ``report/report.json`` (for machines) and ``report/report.html`` (for
people) into the run's folder; this module knows that format, the provider does not.
"""

from __future__ import annotations

import logging
from typing import Any

from batch_fanout_project.pipeline import read_json

log = logging.getLogger(__name__)


def report_headlines(report: dict[str, Any]) -> list[str]:
    """A few lines a person reads first: is the run complete, what ran, the headline figures."""
    summary = report.get("summary") or {}
    lines = [f"complete: {summary.get('complete')}"]
    stress = summary.get("stress") or {}
    if "stress" in summary.get("workloads", []):
        lines.append(f"stress-ng tests: {stress.get('results')} of {stress.get('tests')} reported")
        rows = [row for row in report.get("stress") or [] if row.get("bogo_ops_per_second_real") is not None]
        if rows:
            best = max(rows, key=lambda row: row["bogo_ops_per_second_real"])
            lines.append(
                f"fastest CPU method: {best.get('method')} at {best['bogo_ops_per_second_real']:,.0f} bogo-ops/s "
                f"(stress-ng {', '.join(stress.get('stress_ng_versions', []))})"
            )
    paths = summary.get("shortest_path") or {}
    if "shortest_path" in summary.get("workloads", []):
        graph = paths.get("graph") or {}
        lines.append(
            f"shortest paths: {paths.get('origins_with_results')} of {paths.get('origins')} origins in "
            f"{paths.get('shard_results')} of {paths.get('shards')} shards, on a graph of "
            f"{graph.get('nodes')} nodes and {graph.get('arcs')} arcs"
        )
        central = (report.get("shortest_paths") or {}).get("top_central") or []
        if central:
            lines.append(
                f"most central node: {central[0]['origin']} (closeness {central[0]['closeness']:.4g})"
            )
    missing = summary.get("missing") or {}
    if any(missing.values()):
        lines.append(f"missing: {missing}")
    return lines


def summarize_report(folder: str) -> dict[str, Any]:
    """Read the ``report/report.json`` of the run in ``folder``, log what a person wants to see
    first, and return where the report is.

    :param folder: the run's folder in the results store.
    :raises FileNotFoundError: naming the report that the aggregator should have written.
    """
    report_uri = f"{folder}/report/report.json"
    try:
        report = read_json(report_uri)
    except FileNotFoundError:
        raise FileNotFoundError(f"the aggregator wrote no report: {report_uri} does not exist") from None
    headlines = report_headlines(report)
    for line in headlines:
        log.info("%s", line)
    html = f"{folder}/report/report.html"
    log.info("report: %s", html)
    return {"report_html": html, "report_json": report_uri, "headlines": headlines}
