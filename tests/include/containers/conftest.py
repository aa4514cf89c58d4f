"""Fixtures for the job containers: job folders on ``sys.path`` (for unit tests of their logic), and a
runner that starts a job as AWS Batch does: ``python -m <module>`` in its folder, settings in the
environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

CONTAINERS = Path(__file__).resolve().parents[3] / "include" / "containers"
JOB_FOLDERS = {
    "leader": "leader",
    "stress_follower": "stress_ng",
    "shortest_path": "shortest_path",
    "aggregator": "aggregator",
    "step": "leader",
}

for _folder in JOB_FOLDERS.values():
    if str(CONTAINERS / _folder) not in sys.path:
        sys.path.insert(0, str(CONTAINERS / _folder))


@dataclass
class JobResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class RunningJob:
    process: subprocess.Popen[str]
    timeout: float

    def wait(self) -> JobResult:
        stdout, stderr = self.process.communicate(timeout=self.timeout)
        return JobResult(self.process.returncode, stdout, stderr)


def batch_environment(
    results_uri: str,
    run_prefix: str,
    array_index: int | None = None,
    extra: Mapping[str, str] | None = None,
    path: str | None = None,
) -> dict[str, str]:
    """The environment AWS Batch gives a job, with the project's settings."""
    environ = {
        "PATH": os.environ.get("PATH", "") if path is None else path,
        "HOME": os.environ.get("HOME", "/"),
        "RESULTS_URI": results_uri,
        "RUN_PREFIX": run_prefix,
        "AWS_BATCH_JOB_ID": "11111111-2222-3333-4444-555555555555",
        "AWS_BATCH_JOB_ATTEMPT": "1",
        "AWS_BATCH_CE_NAME": "batch-fanout-ce",
        "AWS_BATCH_JQ_NAME": "batch-fanout-queue",
    }
    if array_index is not None:
        environ["AWS_BATCH_JOB_ARRAY_INDEX"] = str(array_index)
        environ["AWS_BATCH_JOB_ID"] += f":{array_index}"
    environ.update(extra or {})
    return environ


StartJob = Callable[..., RunningJob]
RunJob = Callable[..., JobResult]


@pytest.fixture
def start_job() -> StartJob:
    """Start ``python -m <module> <args>`` in the job's folder, without waiting."""

    def start(
        module: str, args: Sequence[str], environ: Mapping[str, str], timeout: float = 60
    ) -> RunningJob:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=CONTAINERS / JOB_FOLDERS[module],
            env=dict(environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return RunningJob(process, timeout)

    return start


@pytest.fixture
def run_job(start_job: StartJob) -> RunJob:
    """Run ``python -m <module> <args>`` in the job's folder and return its exit code and output."""

    def run(module: str, args: Sequence[str], environ: Mapping[str, str], timeout: float = 60) -> JobResult:
        return start_job(module, args, environ, timeout).wait()

    return run


@pytest.fixture
def run_store(results_uri: str) -> tuple[str, str, Path]:
    """A results URI, a run prefix, and the local folder of that run."""
    prefix = "demo_dag/manual__2026-01-01T00:00:00"
    return results_uri, prefix, Path(results_uri.removeprefix("file://")) / prefix


LEADER_DEFAULTS = {
    "--workloads": "none",
    "--tests": "none",
    "--stress-duration": "none",
    "--stress-cpus": "none",
    "--methods": "none",
    "--exclude-methods": "none",
    "--graph": "none",
    "--grid": "none",
    "--edge-probability": "none",
    "--seed": "none",
    "--shards": "none",
    "--origins": "none",
}


def leader_args(**options: str) -> list[str]:
    """The leader's full command line as the job definition gives it (every option, ``none`` if unset)."""
    values = dict(LEADER_DEFAULTS)
    for name, value in options.items():
        values["--" + name.replace("_", "-")] = value
    return [token for pair in values.items() for token in pair]


@pytest.fixture
def leader_command() -> Callable[..., list[str]]:
    return leader_args


@pytest.fixture
def batch_env() -> Callable[..., dict[str, str]]:
    """Build the environment AWS Batch gives a job (see :func:`batch_environment`)."""
    return batch_environment
