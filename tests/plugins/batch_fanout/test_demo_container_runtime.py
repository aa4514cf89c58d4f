"""``batch-fanout demo --runtime podman``: the pipeline with every job in its real image. Its report
equals the process runtime's apart from timings and machine figures, and every job ran in a container
of its own.

The images are built first with ``batch-fanout images build`` (quick when ``make images`` built them).
Skipped only where no container engine is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
CONF = {"tests": 2, "stress_duration": 1, "grid": "12x12"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.containers,
    # Building the images a first time takes minutes on 2 cores (cold: about 5).
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="no container engine: podman is not installed here (make images installs it with apt-get)",
    ),
]


def cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_fanout.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on where the jobs ran: the summary, the shortest-path figures, and which
    stress tests ran with which stress-ng (their bogo-ops are machine figures)."""
    return {
        "summary": report["summary"],
        "shortest_paths": report["shortest_paths"],
        "stress": [
            {key: row[key] for key in ("index", "method", "stressors", "stress_ng_version")}
            for row in report["stress"]
        ],
    }


def test_demo_in_podman_reports_what_the_process_runtime_reports(demo_project: Any) -> None:
    home, env = demo_project.home, demo_project.env
    built = cli(
        "images",
        "build",
        "--engine",
        "podman",
        "--project-dir",
        str(REPO_ROOT),
        env={**env, "BATCH_FANOUT_HOME": str(REPO_ROOT)},
        cwd=REPO_ROOT,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert len([line for line in built.stdout.splitlines() if line.startswith("local/batch-fanout/")]) == 4

    reports = {}
    data_dir = home / ".local-batch"
    for runtime in ("process", "podman"):
        try:
            demo = cli("demo", "--runtime", runtime, "--conf", json.dumps(CONF), env=env, cwd=home)
        finally:
            cli("local", "stop", "--data-dir", str(data_dir), env=env, cwd=home, timeout=120)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        report = Path(demo.stdout.strip().splitlines()[-1])
        assert report.name == "report.html" and report.is_file(), demo.stdout
        reports[runtime] = json.loads(report.with_name("report.json").read_text())

    assert reports["podman"]["summary"]["complete"] is True
    assert comparable(reports["podman"]) == comparable(reports["process"])

    # Each job of the podman run ran in a container of its own, labelled as this endpoint's.
    from batch_fanout.local.runtimes.container import ENDPOINT_LABEL, JOB_LABEL, endpoint_id

    listed = subprocess.run(
        [
            "podman",
            "ps",
            "--all",
            "--filter",
            f"label={ENDPOINT_LABEL}={endpoint_id(data_dir)}",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    containers = json.loads(listed.stdout or "[]")
    jobs = [entry["Labels"][JOB_LABEL] for entry in containers]
    # leader, 2 stress children, 2 shortest-path shards, aggregator
    assert len(jobs) == len(set(jobs)) == 6, jobs
    assert {entry["State"] for entry in containers} == {"exited"}
    images = {entry["Image"].rsplit("/", 1)[-1] for entry in containers}
    assert images == {"leader:latest", "stress_ng:latest", "shortest_path:latest", "aggregator:latest"}
