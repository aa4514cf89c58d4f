"""``batch-fanout demo``: run the main pipeline on the local AWS Batch endpoint and print its report.

It starts the local endpoint (or finds it running), loads ``airflow_settings.yaml`` into Airflow (the
connection ``batch_fanout_aws`` gets the endpoint's credentials from its data directory, so runs
triggered later from the UI sign as the endpoint requires),
runs ``airflow dags test batch_fanout`` with the DAG's default parameters, and ends with the path of
the report it wrote. ``make demo`` runs it after setting up the virtual environment and the Airflow
metadata database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEMO_DAG_ID = "batch_fanout"


def _project_home() -> Path:
    return Path(os.environ.get("BATCH_FANOUT_HOME") or Path.cwd()).resolve()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_fanout.cli", *args], capture_output=True, text=True, timeout=120
    )


def _results_root(settings_file: Path) -> Path:
    from batch_fanout.settings import load_settings_file

    settings = load_settings_file(settings_file)
    uri = {variable.key: variable.value for variable in settings.variables}["batch_fanout_results_uri"]
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise SystemExit(
            f"error: the demo writes to a local results store; batch_fanout_results_uri is {uri}"
        )
    return Path(parsed.path)


def _endpoint_port(settings_file: Path) -> int:
    """The port of the local endpoint that the settings' AWS connection points at: the settings file is
    the one truth for where the DAGs send their Batch calls."""
    from batch_fanout.settings import load_settings_file

    settings = load_settings_file(settings_file)
    connection = next((c for c in settings.connections if c.conn_id == "batch_fanout_aws"), None)
    endpoint = urlparse(str((connection.extra if connection else {}).get("endpoint_url", "")))
    if endpoint.hostname not in ("127.0.0.1", "localhost") or endpoint.port is None:
        raise SystemExit(
            f"error: the demo runs on the local endpoint, but the connection batch_fanout_aws in "
            f"{settings_file.name} has no endpoint_url on 127.0.0.1 with a port"
        )
    return endpoint.port


def _newest_report(results_root: Path, started: float) -> Path | None:
    reports = [
        path
        for path in (results_root / DEMO_DAG_ID).glob("*/report/report.html")
        if path.stat().st_mtime >= started
    ]
    return max(reports, key=lambda path: path.stat().st_mtime, default=None)


def _summary_lines(report_json: Path) -> list[str]:
    from batch_fanout.pipeline import report_headlines

    try:
        report: dict[str, Any] = json.loads(report_json.read_text())
    except (OSError, ValueError) as error:
        return [f"  (cannot read {report_json}: {error})"]
    return [f"  {line}" for line in report_headlines(report)]


def run_demo(args: argparse.Namespace) -> int:
    home = _project_home()
    settings_file = home / "airflow_settings.yaml"
    dag_file = home / "dags" / f"{DEMO_DAG_ID}.py"
    if not dag_file.is_file():
        print(
            f"error: {dag_file.relative_to(home)} is missing: the demo pipeline is not built yet",
            file=sys.stderr,
        )
        return 1

    endpoint_port = _endpoint_port(settings_file)
    start = _run_cli(
        "local",
        "start",
        "--port",
        str(endpoint_port),
        "--data-dir",
        str(home / ".local-batch"),
        "--containers-dir",
        os.environ.get("BATCH_FANOUT_CONTAINERS_DIR") or str(home / "include" / "containers"),
    )
    if start.returncode != 0:
        print(start.stdout + start.stderr, file=sys.stderr)
        print("error: the local AWS Batch endpoint did not start", file=sys.stderr)
        return 1
    print(f"local AWS Batch endpoint: {start.stdout.strip().splitlines()[-1]}")

    loaded = _run_cli("settings", "load", str(settings_file))
    if loaded.returncode != 0:
        print(loaded.stderr, file=sys.stderr)
        return 1
    print(f"settings loaded from {settings_file.name}")

    # A file:// results store must exist before jobs write to it (on S3 the bucket is the stack's).
    _results_root(settings_file).mkdir(parents=True, exist_ok=True)
    started = time.time()
    command = [sys.executable, "-m", "airflow", "dags", "test", DEMO_DAG_ID]
    if args.conf:
        command += ["--conf", args.conf]
    print(f"running: airflow dags test {DEMO_DAG_ID}" + (f" --conf '{args.conf}'" if args.conf else ""))
    log_path = home / ".airflow" / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        run = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    report = _newest_report(_results_root(settings_file), started)
    if run.returncode != 0 or report is None:
        tail = log_path.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"error: the DAG run failed; the whole log is in {log_path}", file=sys.stderr)
        return 1
    print(f"DAG run log: {log_path}")
    print("summary:")
    for line in _summary_lines(report.with_name("report.json")):
        print(line)
    print('the AWS CLI and boto3 on the same endpoint: eval "$(batch-fanout local env)"')
    print("open the Airflow UI on the same runs (on 127.0.0.1:8080 only): make airflow")
    print(report)
    return 0


def add_parser(subparsers: Any) -> None:
    demo_parser = subparsers.add_parser(
        "demo", help="run the batch_fanout pipeline on the local endpoint and print the report path"
    )
    demo_parser.add_argument("--conf", help="JSON parameters for the run, as for `airflow dags test --conf`")
    demo_parser.set_defaults(func=run_demo)
