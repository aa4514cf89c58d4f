"""The command line of the endpoint and the AWS CLI against it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import EndpointHandle

BATCH_FANOUT = [sys.executable, "-m", "batch_fanout.cli"]
AWS_CLI = Path(sys.executable).parent / "aws"
WaitStatus = Callable[..., dict[str, Any]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.slow
def test_start_status_stop_with_the_default_data_directory(tmp_path: Path, containers_dir: Path) -> None:
    port = str(_free_port())
    environment = {**os.environ, "BATCH_FANOUT_CONTAINERS_DIR": str(containers_dir)}
    stopped = _run([*BATCH_FANOUT, "local", "status"], tmp_path, environment)
    assert stopped.returncode == 1
    assert "not running" in stopped.stdout
    started = _run([*BATCH_FANOUT, "local", "start", "--port", port], tmp_path, environment)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{port}"
        assert (tmp_path / ".local-batch" / "endpoint.pid").exists()
        again = _run([*BATCH_FANOUT, "local", "start", "--port", port], tmp_path, environment)
        assert again.returncode == 0
        assert again.stdout.strip().splitlines()[-1] == url
        status = _run([*BATCH_FANOUT, "local", "status"], tmp_path, environment)
        assert status.returncode == 0
        lines = status.stdout.splitlines()
        assert lines[0] == url
        assert any(line.split() == ["SUCCEEDED", "0"] for line in lines)
    finally:
        stop = _run([*BATCH_FANOUT, "local", "stop"], tmp_path, environment)
    assert stop.returncode == 0
    assert "stopped" in stop.stdout
    assert _run([*BATCH_FANOUT, "local", "status"], tmp_path, environment).returncode == 1
    assert "listening on" in (tmp_path / ".local-batch" / "server.log").read_text()


@pytest.mark.slow
def test_aws_cli_submits_describes_lists_and_reads_logs(
    endpoint: EndpointHandle, definition: str, wait_status: WaitStatus, tmp_path: Path
) -> None:
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": endpoint.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": endpoint.credentials.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PAGER": "",
    }

    def aws(*arguments: str) -> Any:
        result = _run(
            [str(AWS_CLI), "--endpoint-url", endpoint.url, "--output", "json", *arguments],
            tmp_path,
            environment,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None

    leader = aws(
        "batch",
        "submit-job",
        "--job-name",
        "leader",
        "--job-queue",
        "batch-fanout-queue",
        "--job-definition",
        "testjob",
        "--parameters",
        "step=print:from-the-cli",
    )
    follower = aws(
        "batch",
        "submit-job",
        "--job-name",
        "follower",
        "--job-queue",
        "batch-fanout-queue",
        "--job-definition",
        "testjob",
        "--depends-on",
        f"jobId={leader['jobId']},type=N_TO_N",
        "--array-properties",
        "size=12",
    )
    assert wait_status(follower["jobId"])["status"] == "SUCCEEDED"
    described = aws("batch", "describe-jobs", "--jobs", leader["jobId"], follower["jobId"])
    by_id = {job["jobId"]: job for job in described["jobs"]}
    assert by_id[follower["jobId"]]["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 12
    assert by_id[follower["jobId"]]["dependsOn"] == [{"jobId": leader["jobId"], "type": "N_TO_N"}]
    listed = aws("batch", "list-jobs", "--array-job-id", follower["jobId"], "--job-status", "SUCCEEDED")
    assert len(listed["jobSummaryList"]) == 12
    stream = by_id[leader["jobId"]]["container"]["logStreamName"]
    events = aws("logs", "get-log-events", "--log-group-name", "/aws/batch/job", "--log-stream-name", stream)
    assert [event["message"] for event in events["events"]] == ["from-the-cli"]
