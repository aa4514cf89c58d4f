"""Run one DAG of a project on the local AWS Batch endpoint, as a demo: the generic part of a
project's ``demo`` command.

:func:`run_on_local_endpoint` starts the local endpoint that the settings' AWS connection points at
(or finds it running), loads ``airflow_settings.yaml`` into Airflow, creates a ``file://`` results
store named by a variable of the settings, and runs ``airflow dags test <dag_id>``. What the run
means (which report to print) is the project's: it calls this and reads its own outputs. The
provider knows no DAG, connection or variable of any project.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


@dataclass(frozen=True)
class LocalRun:
    """What :func:`run_on_local_endpoint` did.

    :param returncode: the exit status of ``airflow dags test`` (non-zero: the run failed).
    :param results_root: the local folder of the results store.
    :param started: when the run started (seconds since the epoch).
    :param log_path: the whole output of ``airflow dags test``.
    """

    returncode: int
    results_root: Path
    started: float
    log_path: Path


class DemoError(RuntimeError):
    """The demo cannot run; the message says what to fix."""


def project_home() -> Path:
    """The project folder: ``$BATCH_FANOUT_HOME``, else the current directory."""
    return Path(os.environ.get("BATCH_FANOUT_HOME") or Path.cwd()).resolve()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_fanout.cli", *args], capture_output=True, text=True, timeout=120
    )


def results_root(settings_file: Path, variable: str) -> Path:
    """The local folder of the ``file://`` results store the settings' ``variable`` names."""
    from batch_fanout.settings import load_settings_file

    values = {entry.key: entry.value for entry in load_settings_file(settings_file).variables}
    if variable not in values:
        raise DemoError(f"{settings_file.name} sets no variable {variable}")
    parsed = urlparse(values[variable])
    if parsed.scheme != "file":
        raise DemoError(f"the demo writes to a local results store; {variable} is {values[variable]}")
    return Path(parsed.path)


def endpoint_port(settings_file: Path, conn_id: str) -> int:
    """The port of the local endpoint that the settings' connection ``conn_id`` points at: the
    settings file is the one truth for where the DAGs send their Batch calls."""
    from batch_fanout.settings import load_settings_file

    connection = next(
        (c for c in load_settings_file(settings_file).connections if c.conn_id == conn_id), None
    )
    endpoint = urlparse(str((connection.extra if connection else {}).get("endpoint_url", "")))
    if endpoint.hostname not in ("127.0.0.1", "localhost") or endpoint.port is None:
        raise DemoError(
            f"the demo runs on the local endpoint, but the connection {conn_id} in {settings_file.name} "
            "has no endpoint_url on 127.0.0.1 with a port"
        )
    return endpoint.port


def run_on_local_endpoint(
    dag_id: str,
    *,
    conn_id: str,
    results_variable: str,
    conf: str | None = None,
    home: Path | None = None,
    runtime: str = "process",
) -> LocalRun:
    """Start the local endpoint, load the settings and run ``airflow dags test dag_id``.

    Progress lines go to stdout; the run's own output to ``<home>/.airflow/<dag_id>.log``.

    :param dag_id: the DAG to run.
    :param conn_id: the AWS connection of the settings whose ``endpoint_url`` is the local endpoint.
    :param results_variable: the settings' variable holding the ``file://`` results store.
    :param conf: JSON parameters of the run, as for ``airflow dags test --conf``.
    :param home: the project folder (default :func:`project_home`) with ``airflow_settings.yaml``.
    :param runtime: how the endpoint runs jobs: ``process``, or in their images with ``podman`` or
        ``docker`` (build them first with ``batch-fanout images build``).
    :raises DemoError: when the endpoint or the settings cannot be set up.
    """
    home = home or project_home()
    settings_file = home / "airflow_settings.yaml"
    port = endpoint_port(settings_file, conn_id)
    start = _run_cli(
        "local",
        "start",
        "--port",
        str(port),
        "--data-dir",
        str(home / ".local-batch"),
        # The project's job images: the environment's folder when set, else the project's own.
        "--containers-dir",
        os.environ.get("BATCH_FANOUT_CONTAINERS_DIR") or str(home / "include" / "containers"),
        "--runtime",
        runtime,
    )
    if start.returncode != 0:
        raise DemoError(f"the local AWS Batch endpoint did not start:\n{start.stdout}{start.stderr}")
    print(f"local AWS Batch endpoint: {start.stdout.strip().splitlines()[-1]}")
    if runtime != "process":
        print(f"jobs run in their images with {runtime}")

    loaded = _run_cli("settings", "load", str(settings_file))
    if loaded.returncode != 0:
        raise DemoError(f"the settings did not load:\n{loaded.stderr}")
    print(f"settings loaded from {settings_file.name}")

    # A file:// results store must exist before jobs write to it (on S3 the bucket is the stack's).
    root = results_root(settings_file, results_variable)
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if conf:
        command += ["--conf", conf]
    print(f"running: airflow dags test {dag_id}" + (f" --conf '{conf}'" if conf else ""))
    log_path = home / ".airflow" / f"{dag_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        run = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    return LocalRun(run.returncode, root, started, log_path)
