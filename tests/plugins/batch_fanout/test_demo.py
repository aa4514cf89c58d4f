"""``batch-fanout demo`` (what ``make demo`` runs): the whole pipeline on a local endpoint, ending with
the path of the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_ends_with_the_report_path(demo_project: Any) -> None:
    assert "http://127.0.0.1:8699" in (REPO_ROOT / "airflow_settings.yaml").read_text()
    home, port, env = demo_project.home, demo_project.port, demo_project.env

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
