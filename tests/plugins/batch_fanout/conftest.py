"""Fixtures for the provider's behaviour tests: a local endpoint running the tiny test job
``tests/plugins/batch_fanout/containers/fanout_probe``, the Airflow connection to it, and helpers to
read what the jobs did."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import wait_for

CONTAINERS_DIR = Path(__file__).resolve().parent / "containers"
PROBE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout-tests/fanout_probe:1"
PROBE_DEFINITION = "fanout-probe"
#: The same probe, declared as a container that does not know the index map: it reads
#: AWS_BATCH_JOB_ARRAY_INDEX itself, as most containers written for AWS Batch do.
NAIVE_PROBE_DEFINITION = "naive-probe"
QUEUE = "batch-fanout-queue"
# The provider's default connection, as the Amazon provider's.
CONN_ID = "aws_default"


@pytest.fixture(scope="session")
def probe_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local endpoint whose images resolve to the provider tests' own job folders, with the probe
    registered twice: declaring the index-map contract (``fanout-probe``) and not (``naive-probe``)."""
    from batch_fanout.job_contract import INDEX_MAP_TAG
    from batch_fanout.local.testing import running_endpoint

    with running_endpoint(
        tmp_path_factory.mktemp("provider-batch"), containers_dir=CONTAINERS_DIR
    ) as endpoint:
        for name, tags in ((PROBE_DEFINITION, {INDEX_MAP_TAG: "true"}), (NAIVE_PROBE_DEFINITION, {})):
            endpoint.client("batch").register_job_definition(
                jobDefinitionName=name,
                type="container",
                containerProperties={
                    "image": PROBE_IMAGE,
                    "command": ["python", "probe.py", "--record-dir", "none"],
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "0.25"},
                        {"type": "MEMORY", "value": "64"},
                    ],
                },
                tags=tags,
            )
        yield endpoint


@pytest.fixture
def probe_batch(probe_endpoint: Any) -> Any:
    return probe_endpoint.client("batch")


@pytest.fixture
def probe_connection(probe_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Airflow connection ``aws_default`` pointing at the provider tests' endpoint."""
    value = json.dumps(probe_endpoint.connection())
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", value)
    return CONN_ID


@dataclass
class Probe:
    """Where one test's jobs record their runs, and how to build their command."""

    record_dir: Path

    def overrides(self, **options: Any) -> dict[str, Any]:
        """``container_overrides`` running the probe with ``--option value`` for each keyword."""
        command = ["python", "probe.py", "--record-dir", str(self.record_dir)]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        return {"command": command}

    def outputs(self) -> dict[int, str]:
        """The job id that wrote each logical index's output (written on success only)."""
        folder = self.record_dir / "outputs"
        return {int(path.stem): path.read_text() for path in sorted(folder.glob("*.out"))}

    def runs(self) -> dict[int, int]:
        """Runs per logical index, as the jobs recorded them."""
        counts: dict[int, int] = {}
        for path in self.record_dir.glob("*.[0-9]*"):
            index = int(path.name.split(".")[0])
            counts[index] = counts.get(index, 0) + 1
        return dict(sorted(counts.items()))


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    return Probe(tmp_path / "records")


def jobs_of_task(
    batch: Any, job_name: str, dag_id: str, task_id: str, queue: str = QUEUE
) -> list[dict[str, Any]]:
    """Every job a task submitted (found by the tags the operator puts on them), oldest first."""
    summaries = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [job_name]}])
    ids = [s["jobId"] for s in summaries["jobSummaryList"]]
    if not ids:
        return []
    described = batch.describe_jobs(jobs=ids)["jobs"]
    mine = [
        d
        for d in described
        if d.get("tags", {}).get("batch-fanout:dag-id") == dag_id
        and d.get("tags", {}).get("batch-fanout:task-id") == task_id
    ]
    return sorted(mine, key=lambda d: d["createdAt"])


def release_when(condition: Callable[[], Any], hold_file: Path, timeout: float = 60) -> threading.Thread:
    """In the background, create ``hold_file`` (releasing held probe jobs) once ``condition`` holds."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    break
            except Exception:
                pass
            time.sleep(0.05)
        hold_file.parent.mkdir(parents=True, exist_ok=True)
        hold_file.touch()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def helpers() -> Any:
    class Helpers:
        jobs_of_task = staticmethod(jobs_of_task)
        wait_for = staticmethod(wait_for)
        release_when = staticmethod(release_when)

    return Helpers


@dataclass(frozen=True)
class DemoProject:
    """A user's project folder for ``batch-fanout demo``: the repository's DAGs and images linked in,
    its own ``airflow_settings.yaml`` pointing at a free port, and a migrated Airflow home."""

    home: Path
    port: int
    env: dict[str, str]


@pytest.fixture
def demo_project(tmp_path: Path) -> DemoProject:
    repo_root = Path(__file__).resolve().parents[3]
    home = tmp_path / "project"
    home.mkdir()
    (home / "dags").symlink_to(repo_root / "dags")
    (home / "include").symlink_to(repo_root / "include")  # the job images, as in any project
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = (repo_root / "airflow_settings.yaml").read_text()
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
    return DemoProject(home, port, env)
