"""Run a real local endpoint for the duration of a test (in a subprocess) and get boto3 clients for it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_fanout.local.cli import SERVER_LOG, fetch_status, running_state, serve_command

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class EndpointHandle:
    """A running endpoint: its URL, port, data directory and process."""

    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` (``batch`` or ``logs``) for this endpoint, with dummy credentials."""
        import boto3
        from botocore.config import Config

        client: Any = boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )
        return client

    def kill(self) -> None:
        """``kill -9`` the endpoint (to test recovery)."""
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Stop the endpoint gracefully (SIGTERM) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_endpoint(
    data_dir: Path,
    port: int = 0,
    containers_dir: Path | None = None,
    vcpus: int | None = None,
    *,
    kill_grace_seconds: float | None = None,
    max_log_bytes: int | None = None,
) -> EndpointHandle:
    """Start ``batch-fanout local serve`` as a child process and return once it answers."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / SERVER_LOG
    command = serve_command(
        data_dir,
        port,
        containers_dir=containers_dir,
        vcpus=vcpus,
        kill_grace_seconds=kill_grace_seconds,
        max_log_bytes=max_log_bytes,
    )
    with open(log_path, "ab") as server_log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log, env=dict(os.environ)
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        state = running_state(data_dir)
        if state is not None and state["pid"] == process.pid:
            return EndpointHandle(state["url"], int(state["port"]), data_dir, process)
        time.sleep(0.02)  # waiting for another process to bind its port; it has no other signal
    if process.poll() is None:
        process.kill()
        process.wait()
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the local endpoint did not start in {START_TIMEOUT_SECONDS:g} s:\n{tail}")


@contextlib.contextmanager
def running_endpoint(
    data_dir: Path,
    port: int = 0,
    containers_dir: Path | None = None,
    vcpus: int | None = None,
    *,
    kill_grace_seconds: float | None = None,
    max_log_bytes: int | None = None,
) -> Iterator[EndpointHandle]:
    """A running local endpoint, stopped gracefully on exit.

    :param data_dir: its data directory (state, logs)
    :param port: the port on 127.0.0.1; 0 picks a free one
    :param containers_dir: the folder of image folders (default: the project's ``include/containers``)
    :param vcpus: the default compute environment's vCPUs (default: the CPU count)
    :param kill_grace_seconds: time from SIGTERM to SIGKILL when a job is stopped (default: AWS's 30 s)
    :param max_log_bytes: the size at which a log stream is cut
    """
    handle = start_endpoint(
        data_dir,
        port,
        containers_dir,
        vcpus,
        kill_grace_seconds=kill_grace_seconds,
        max_log_bytes=max_log_bytes,
    )
    try:
        yield handle
    finally:
        handle.stop()


__all__ = ["EndpointHandle", "fetch_status", "running_endpoint", "start_endpoint"]
