"""The project's ``batch-fanout`` commands (found by the provider's CLI in the DAG folder).

``batch-fanout demo [--conf JSON]`` runs the ``batch_fanout`` pipeline on the local AWS Batch endpoint
(:func:`batch_fanout.demo.run_on_local_endpoint`: the settings load gives the connection
``batch_fanout_aws`` the endpoint's credentials from its data directory, so runs triggered later
from the UI sign as the endpoint requires) and ends with a summary and the path of the report it
wrote. ``make demo`` runs it after setting up the virtual environment and the Airflow
metadata database.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from batch_fanout.demo import DemoError, run_on_local_endpoint

DEMO_DAG_ID = "batch_fanout"


def _newest_report(results_root: Path, started: float) -> Path | None:
    reports = [
        path
        for path in (results_root / DEMO_DAG_ID).glob("*/report/report.html")
        if path.stat().st_mtime >= started
    ]
    return max(reports, key=lambda path: path.stat().st_mtime, default=None)


def _summary_lines(report_json: Path) -> list[str]:
    from batch_fanout_project.report import report_headlines

    try:
        report: dict[str, Any] = json.loads(report_json.read_text())
    except (OSError, ValueError) as error:
        return [f"  (cannot read {report_json}: {error})"]
    return [f"  {line}" for line in report_headlines(report)]


def run_demo(args: argparse.Namespace) -> int:
    # Imported here: the pipeline module imports Airflow, which every other command can do without.
    from batch_fanout_project.pipeline import AWS_CONN_ID, RESULTS_VARIABLE

    try:
        run = run_on_local_endpoint(
            DEMO_DAG_ID,
            conn_id=AWS_CONN_ID,
            results_variable=RESULTS_VARIABLE,
            conf=args.conf,
            runtime=args.runtime,
        )
    except DemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = _newest_report(run.results_root, run.started)
    if run.returncode != 0 or report is None:
        tail = run.log_path.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"error: the DAG run failed; the whole log is in {run.log_path}", file=sys.stderr)
        return 1
    print(f"DAG run log: {run.log_path}")
    print("summary:")
    for line in _summary_lines(report.with_name("report.json")):
        print(line)
    print('the AWS CLI and boto3 on the same endpoint: eval "$(batch-fanout local env)"')
    print("open the Airflow UI on the same runs (on 127.0.0.1:8080 only): make airflow")
    print(report)
    return 0


def add_parser(subparsers: Any) -> None:
    demo_parser = subparsers.add_parser(
        "demo", help=f"run the {DEMO_DAG_ID} pipeline on the local endpoint and print the report path"
    )
    demo_parser.add_argument("--conf", help="JSON parameters for the run, as for `airflow dags test --conf`")
    demo_parser.add_argument(
        "--runtime",
        choices=("process", "podman", "docker"),
        default="process",
        help="run the jobs as processes (default) or in their images with a container engine "
        "(build them first: batch-fanout images build)",
    )
    demo_parser.set_defaults(func=run_demo)
