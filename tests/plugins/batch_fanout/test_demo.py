"""``batch-fanout demo`` (what ``make demo`` runs): the whole pipeline on a local endpoint, ending with
the path of the report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_ends_with_the_report_path(tmp_path: Path) -> None:
    home = tmp_path / "project"
    home.mkdir()
    (home / "dags").symlink_to(REPO_ROOT / "dags")
    (home / "include").symlink_to(REPO_ROOT / "include")  # the job images, as in any project
    port = free_port()
    settings = (REPO_ROOT / "airflow_settings.yaml").read_text()
    assert "http://127.0.0.1:8699" in settings
    (home / "airflow_settings.yaml").write_text(settings.replace("127.0.0.1:8699", f"127.0.0.1:{port}"))
    airflow_home = home / ".airflow"
    env = {
        **os.environ,
        "BATCH_FANOUT_HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
    }
    for name in list(env):
        if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            del env[name]
    airflow_home.mkdir()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )

    conf = json.dumps({"tests": 2, "stress_duration": 1, "grid": "12x12"})
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "batch_fanout.cli", "demo", "--conf", conf],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "batch_fanout.cli",
                "local",
                "stop",
                "--data-dir",
                str(home / ".local-batch"),
            ],
            env=env,
            capture_output=True,
            timeout=120,
        )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.strip().splitlines()
    assert lines[0] == f"local AWS Batch endpoint: http://127.0.0.1:{port}"
    report = Path(lines[-1])
    assert report.name == "report.html" and report.is_file()
    assert report.is_relative_to(home / ".results" / "batch_fanout")
    assert "  complete: True" in lines
    assert "  stress-ng tests: 2 of 2 reported" in lines
    summary = json.loads(report.with_name("report.json").read_text())["summary"]
    assert summary["shortest_path"]["shards"] == 2
