"""Run a real local endpoint for the duration of a test (in a subprocess) and get boto3 clients for it.

The clients are signed with the endpoint's own credentials, as every request must be.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

from batch_fanout.local import DEFAULT_REGION
from batch_fanout.local.auth import LocalCredentials, credentials_for_data_dir, signed_headers
from batch_fanout.local.cli import ServeOptions, fetch_status, spawn_endpoint
from batch_fanout.local.clock import exchange_clock
from batch_fanout.local.faults import exchange_faults, reclaim_jobs

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
P = ParamSpec("P")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something true and return that; fail naming ``what`` after
    ``timeout`` seconds. Jobs and Airflow runs signal nothing, so a test waits on their state this way."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class EndpointHandle:
    """A running endpoint: its URL, port, data directory, process and the credentials it verifies with."""

    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    credentials: LocalCredentials = field(repr=False)

    def client(self, service: str, region: str = DEFAULT_REGION) -> Any:
        """A boto3 client of ``service`` (``batch`` or ``logs``) for this endpoint, signed with its credentials."""
        import boto3
        from botocore.config import Config

        client: Any = boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )
        return client

    def env(self) -> dict[str, str]:
        """The variables of ``batch-fanout local env`` for this endpoint (credentials, region, URL)."""
        return {
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            "AWS_ENDPOINT_URL": self.url,
        }

    def faults(self, document: dict[str, Any] | None = None) -> dict[str, Any]:
        """The endpoint's faults on demand, after replacing them with ``document`` if given."""
        return exchange_faults(self.url, self.credentials, document)

    def advance_clock(self, seconds: float | None = None) -> dict[str, int]:
        """The endpoint's scheduling clock (``nowMs``, ``offsetMs``), after moving it ``seconds`` forward.

        Queues' ``jobStateTimeLimitActions`` and fair-share decay read this clock (``clock.py``).
        """
        return exchange_clock(self.url, self.credentials, seconds)

    def reclaim(self, *job_ids: str, compute_environments: tuple[str, ...] = ()) -> list[str]:
        """Reclaim the running attempts of ``job_ids`` and of ``compute_environments`` now, as Spot
        does; the ids of the jobs reclaimed."""
        return reclaim_jobs(self.url, self.credentials, list(job_ids), list(compute_environments))

    def connection(self, region: str = DEFAULT_REGION, **extra: Any) -> dict[str, Any]:
        """An Airflow ``aws`` connection for this endpoint (for ``AIRFLOW_CONN_<ID>`` as JSON).

        :param region: the connection's ``region_name``
        :param extra: more of the connection's extras
        """
        return {
            "conn_type": "aws",
            "login": self.credentials.access_key_id,
            "password": self.credentials.secret_access_key,
            "extra": {"region_name": region, "endpoint_url": self.url, **extra},
        }

    def signed_headers(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        region: str = DEFAULT_REGION,
    ) -> dict[str, str]:
        """``headers`` plus a valid SigV4 signature of the request, for tests that send raw HTTP.

        The service of the scope is ``logs`` when ``headers`` name an ``X-Amz-Target``, else ``batch``.

        :param method: the HTTP method
        :param path: the path and query string, as sent
        :param body: the body, as sent
        :param headers: the other headers, as sent (signed too)
        :param region: the region of the scope
        """
        headers = dict(headers or {})
        service = "logs" if any(name.lower() == "x-amz-target" for name in headers) else "batch"
        return signed_headers(
            method,
            f"{self.url}{path}",
            credentials=self.credentials,
            region=region,
            service=service,
            body=body,
            headers=headers,
        )

    def status(self) -> dict[str, Any] | None:
        """The endpoint's ``/_local/status`` (job counts, pid), or ``None`` when it does not answer."""
        return fetch_status(self.url, self.credentials)

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
    credentials_file: Path | None = None,
    runtime: str | None = None,
    gpus: int | None = None,
) -> EndpointHandle:
    """Start ``batch-fanout local serve`` as a child process and return once it answers.

    :param data_dir: its data directory (state, logs)
    :param port: the port on 127.0.0.1; 0 picks a free one
    :param containers_dir: the folder of image folders (default: the endpoint's lookup order, see
        ``batch_fanout.local.images``)
    :param vcpus: the default compute environment's vCPUs (default: the CPU count)
    :param kill_grace_seconds: time from SIGTERM to SIGKILL when a job is stopped (default: AWS's 30 s)
    :param max_log_bytes: the size at which a log stream is cut
    :param credentials_file: explicit credentials (default: created in the data directory)
    :param runtime: ``process`` (default), ``podman`` or ``docker``
    :param gpus: the machine's GPUs (default: as many as the NVIDIA driver lists, none here)
    :raises RuntimeError: when it exits or does not answer in time, with the end of its server log
    """
    data_dir = Path(data_dir).resolve()
    options = ServeOptions(
        containers_dir=containers_dir,
        vcpus=vcpus,
        kill_grace_seconds=kill_grace_seconds,
        max_log_bytes=max_log_bytes,
        credentials_file=credentials_file,
        runtime=runtime,
        gpus=gpus,
    )
    process, state = spawn_endpoint(data_dir, port, options, timeout=START_TIMEOUT_SECONDS)
    return EndpointHandle(
        state["url"], int(state["port"]), data_dir, process, credentials_for_data_dir(data_dir)
    )


def _stopped_on_exit(
    start: Callable[P, EndpointHandle],
) -> Callable[P, contextlib.AbstractContextManager[EndpointHandle]]:
    """A context manager that takes the arguments of ``start``, calls it on entry and stops the
    endpoint it returns on exit (its signature, for ``help()``, is ``start``'s)."""

    @contextlib.contextmanager
    @functools.wraps(start)
    def running(*args: P.args, **kwargs: P.kwargs) -> Iterator[EndpointHandle]:
        handle = start(*args, **kwargs)
        try:
            yield handle
        finally:
            handle.stop()

    return running


running_endpoint = _stopped_on_exit(start_endpoint)
running_endpoint.__name__ = running_endpoint.__qualname__ = "running_endpoint"
running_endpoint.__doc__ = """A running local endpoint, stopped gracefully on exit.

Its arguments are those of :func:`start_endpoint`.
"""


__all__ = ["EndpointHandle", "fetch_status", "running_endpoint", "start_endpoint", "wait_for"]
