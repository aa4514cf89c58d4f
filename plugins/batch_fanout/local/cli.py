"""``batch-fanout local start|stop|status|serve|env``: run the local AWS Batch endpoint."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_fanout.local import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REGION
from batch_fanout.local.auth import (
    CREDENTIALS_FILE,
    CredentialsError,
    LocalCredentials,
    credentials_for_data_dir,
    load_credentials,
    recorded_credentials_file,
    signed_headers,
)
from batch_fanout.local.clock import exchange_clock
from batch_fanout.local.engine import DEFAULT_KILL_GRACE_SECONDS, DEFAULT_MAX_LOG_BYTES
from batch_fanout.local.faults import exchange_faults, reclaim_jobs

STATE_FILE = "endpoint.json"
PID_FILE = "endpoint.pid"
SERVER_LOG = "server.log"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
# A start that failed: time the endpoint gets to stop gracefully before it is killed.
ABANDON_GRACE_SECONDS = 10.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fetch_status(url: str, credentials: LocalCredentials, timeout: float = 2.0) -> dict[str, Any] | None:
    """The endpoint's own status (``/_local/status``, signed like any call), or ``None`` when nothing
    answers at ``url`` or it refuses the credentials."""
    status_url = f"{url}/_local/status"
    request = urllib.request.Request(
        status_url, headers=signed_headers("GET", status_url, credentials=credentials, region=DEFAULT_REGION)
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return payload if isinstance(payload, dict) else None


def running_state(data_dir: Path) -> dict[str, Any] | None:
    """URL, port and pid of the endpoint that runs with ``data_dir``, or ``None``."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int) or not _pid_alive(state["pid"]):
        return None
    try:
        credentials = load_credentials(recorded_credentials_file(data_dir) or data_dir / CREDENTIALS_FILE)
    except CredentialsError:
        return None
    status = fetch_status(str(state.get("url")), credentials)
    if status is None or status.get("pid") != state["pid"]:
        return None
    state["counts"] = status.get("counts", {})
    state["gpus"] = status.get("gpus") or {}
    return state


@dataclass(frozen=True)
class ServeOptions:
    """The options of ``batch-fanout local serve`` besides its data directory and port; each one left
    ``None`` is left to the endpoint's default.

    :param containers_dir: the folder of image folders (default: the lookup order of
        ``batch_fanout.local.images``)
    :param vcpus: the default compute environment's vCPUs (default: the CPU count)
    :param kill_grace_seconds: seconds from SIGTERM to SIGKILL when a job is stopped (default: AWS's 30 s)
    :param max_log_bytes: the size at which a log stream is cut
    :param credentials_file: the credentials requests must be signed with (default: created in the data
        directory)
    :param runtime: ``process`` (default), ``podman`` or ``docker``
    :param gpus: the machine's GPUs (default: as many as the NVIDIA driver lists)
    """

    containers_dir: Path | None = None
    vcpus: int | None = None
    kill_grace_seconds: float | None = None
    max_log_bytes: int | None = None
    credentials_file: Path | None = None
    runtime: str | None = None
    gpus: int | None = None

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> ServeOptions:
        """The options given on the command line of ``start`` or ``serve``."""
        return cls(
            containers_dir=Path(args.containers_dir) if args.containers_dir else None,
            vcpus=args.vcpus,
            kill_grace_seconds=args.kill_grace_seconds,
            max_log_bytes=args.max_log_bytes,
            credentials_file=Path(args.credentials_file) if args.credentials_file else None,
            runtime=args.runtime,
            gpus=args.gpus,
        )

    def command(self, data_dir: Path, port: int) -> list[str]:
        """The command line that runs the endpoint of ``data_dir`` on ``port`` in the foreground."""
        # Resolved here, as the endpoint records the file's path for ``env`` and ``status`` run elsewhere.
        credentials_file = Path(self.credentials_file).resolve() if self.credentials_file else None
        flags = (
            ("--containers-dir", self.containers_dir),
            ("--vcpus", self.vcpus),
            ("--kill-grace-seconds", self.kill_grace_seconds),
            ("--max-log-bytes", self.max_log_bytes),
            ("--credentials-file", credentials_file),
            ("--runtime", self.runtime),
            ("--gpus", self.gpus),
        )
        command = [sys.executable, "-m", "batch_fanout.local", "serve", "--port", str(port)]
        command += ["--data-dir", str(data_dir)]
        for flag, value in flags:
            if value is not None:
                command += [flag, str(value)]
        return command


def spawn_endpoint(
    data_dir: Path,
    port: int,
    options: ServeOptions,
    *,
    timeout: float = START_TIMEOUT_SECONDS,
    detach: bool = False,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Run ``serve`` for ``data_dir``, its output appended to the server log, and return its process
    and state once the state file names its pid and it answers its status call.

    :param data_dir: the endpoint's data directory, resolved (created when missing)
    :param port: the port on 127.0.0.1; 0 picks a free one
    :param options: the other options of ``serve``
    :param timeout: seconds to wait for it to answer
    :param detach: run it in a session of its own, so that it outlives the caller and its terminal
    :raises RuntimeError: when it exits or does not answer within ``timeout``, with the end of its
        server log; it is stopped first
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / SERVER_LOG
    with open(log_path, "ab") as server_log:
        process = subprocess.Popen(
            options.command(data_dir, port),
            stdin=subprocess.DEVNULL,
            stdout=server_log,
            stderr=server_log,
            start_new_session=detach,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        state = running_state(data_dir)
        if state is not None and state["pid"] == process.pid:
            return process, state
        time.sleep(0.02)  # the child's only signs of readiness are its state file and its status call
    exit_code = process.poll()
    if exit_code is None:
        process.terminate()
        try:
            process.wait(timeout=ABANDON_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    tail = log_path.read_text(errors="replace")[-3000:]
    reason = (
        f"it did not answer in {timeout:g} s" if exit_code is None else f"it exited with code {exit_code}"
    )
    raise RuntimeError(f"the local endpoint did not start: {reason} (data directory {data_dir}):\n{tail}")


def start_background(
    data_dir: Path,
    port: int,
    options: ServeOptions | None = None,
    *,
    timeout: float = START_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Start the endpoint in the background (or find it running) and return its state once it answers.

    :param data_dir: the endpoint's data directory
    :param port: the port on 127.0.0.1; 0 picks a free one
    :param options: the other options of ``serve`` (default: none given)
    :param timeout: seconds to wait for it to answer
    :raises RuntimeError: when it does not come up, with the end of its server log, or when the one
        running uses another runtime than ``options`` asks for
    """
    options = options or ServeOptions()
    data_dir = data_dir.resolve()
    state = running_state(data_dir)
    if state is not None:
        running = state.get("runtime", "process")
        if options.runtime is not None and running != options.runtime:
            raise RuntimeError(
                f"the local endpoint of {data_dir} runs jobs with the {running} runtime, not "
                f"{options.runtime}: stop it first (batch-fanout local stop --data-dir {data_dir})"
            )
        return state
    return spawn_endpoint(data_dir, port, options, timeout=timeout, detach=True)[1]


def stop_endpoint(data_dir: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the endpoint of ``data_dir`` gracefully; ``False`` when none was running."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            pid = int((data_dir / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return False
    if not _pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError):  # reap it when it is our own child
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)  # waiting for another process to exit; there is no event to wait on
    os.kill(pid, signal.SIGKILL)
    return True


def _start(args: argparse.Namespace) -> int:
    try:
        state = start_background(Path(args.data_dir), args.port, ServeOptions.from_arguments(args))
    except RuntimeError as error:
        print(str(error), file=sys.stderr)
        return 1
    print(
        f"local AWS Batch endpoint running (pid {state['pid']}, data directory {Path(args.data_dir).resolve()})"
    )
    print(state["url"])
    return 0


def _stop(args: argparse.Namespace) -> int:
    if stop_endpoint(Path(args.data_dir)):
        print("local AWS Batch endpoint stopped")
    else:
        print("local AWS Batch endpoint was not running")
    return 0


def _running_endpoint(data_dir: Path) -> tuple[str, LocalCredentials] | None:
    """The URL and credentials of the endpoint running on ``data_dir``; ``None``, said on stderr, when
    none runs there."""
    state = running_state(data_dir)
    if state is None:
        print(f"local AWS Batch endpoint is not running (data directory {data_dir})", file=sys.stderr)
        return None
    credentials = load_credentials(recorded_credentials_file(data_dir) or data_dir / CREDENTIALS_FILE)
    return str(state["url"]), credentials


def _clock(args: argparse.Namespace) -> int:
    running = _running_endpoint(Path(args.data_dir).resolve())
    if running is None:
        return 1
    try:
        print(json.dumps(exchange_clock(*running, args.advance), indent=2))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _status(args: argparse.Namespace) -> int:
    state = running_state(Path(args.data_dir))
    if state is None:
        print(f"local AWS Batch endpoint is not running (data directory {Path(args.data_dir).resolve()})")
        return 1
    print(state["url"])
    for status, count in state["counts"].items():
        print(f"{status:<10} {count}")
    gpus = state["gpus"]
    if gpus.get("count"):
        print(f"GPUs       {len(gpus.get('inUse') or [])} of {gpus['count']} in use")
    return 0


def _faults(args: argparse.Namespace) -> int:
    running = _running_endpoint(Path(args.data_dir).resolve())
    if running is None:
        return 1
    document: dict[str, Any] | None = None
    try:
        if args.clear:
            document = {}
        elif args.file:
            document = json.loads(Path(args.file).read_text())
        elif args.set:
            document = json.loads(args.set)
    except (OSError, ValueError) as error:
        print(f"error: cannot read the faults document: {error}", file=sys.stderr)
        return 2
    try:
        if args.reclaim or args.reclaim_environment:
            reclaimed = reclaim_jobs(*running, args.reclaim or [], args.reclaim_environment)
            for job_id in reclaimed:
                print(f"reclaimed {job_id}")
            return 0
        print(json.dumps(exchange_faults(*running, document), indent=2))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _serve(args: argparse.Namespace) -> int:
    from batch_fanout.local.images import containers_dir_for
    from batch_fanout.local.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = Path(args.data_dir).resolve()
    try:
        containers_dir = containers_dir_for(data_dir, args.containers_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return serve(
        data_dir,
        args.port,
        containers_dir,
        vcpus=args.vcpus,
        kill_grace_seconds=(
            args.kill_grace_seconds if args.kill_grace_seconds is not None else DEFAULT_KILL_GRACE_SECONDS
        ),
        max_log_bytes=args.max_log_bytes if args.max_log_bytes is not None else DEFAULT_MAX_LOG_BYTES,
        credentials_file=Path(args.credentials_file).resolve() if args.credentials_file else None,
        runtime=args.runtime or "process",
        gpus=args.gpus,
    )


def endpoint_environment(data_dir: Path, port: int = DEFAULT_PORT) -> dict[str, str]:
    """The environment that points the AWS CLI and boto3 at the endpoint of ``data_dir``.

    The URL is the running endpoint's, or else the one it will have on ``port``; the credentials are
    the ones it verifies with (created in the data directory when it has none yet).

    :param data_dir: the endpoint's data directory
    :param port: the port assumed when the endpoint is not running
    """
    data_dir = data_dir.resolve()
    state = running_state(data_dir)
    credentials = credentials_for_data_dir(data_dir)
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_ENDPOINT_URL": str(state["url"]) if state else f"http://{DEFAULT_HOST}:{port}",
    }


def _env(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    try:
        environment = endpoint_environment(data_dir, args.port)
    except CredentialsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if running_state(data_dir) is None:
        print(
            f"# the local AWS Batch endpoint is not running (data directory {data_dir}); "
            "start it with: batch-fanout local start",
            file=sys.stderr,
        )
    for name, value in environment.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _gpu_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"--gpus must be a whole number of 0 or more, got {value!r}")
    return count


def _common(parser: argparse.ArgumentParser, with_port: bool) -> None:
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help=f"state, logs and pid file (default: ./{DEFAULT_DATA_DIR})",
    )
    if with_port:
        parser.add_argument(
            "--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default: {DEFAULT_PORT})"
        )
        parser.add_argument(
            "--containers-dir",
            help=(
                "folder of image folders; else $BATCH_FANOUT_CONTAINERS_DIR, else containersDir in "
                "<data-dir>/settings.json"
            ),
        )
        parser.add_argument(
            "--vcpus", type=int, help="vCPUs of the default compute environment (default: CPU count)"
        )
        parser.add_argument(
            "--gpus",
            type=_gpu_count,
            help="GPUs of the machine that jobs' GPU requirements draw from (default: as many as the "
            "NVIDIA driver lists, else 0)",
        )
        parser.add_argument(
            "--kill-grace-seconds",
            type=float,
            help=f"seconds from SIGTERM to SIGKILL when a job is stopped (default: {DEFAULT_KILL_GRACE_SECONDS:g})",
        )
        parser.add_argument(
            "--max-log-bytes",
            type=int,
            help=f"size at which a log stream is cut (default: {DEFAULT_MAX_LOG_BYTES})",
        )
        parser.add_argument(
            "--credentials-file",
            help=(
                "JSON file with aws_access_key_id and aws_secret_access_key that requests must be signed "
                f"with (default: {CREDENTIALS_FILE} in the data directory, created on first start)"
            ),
        )
        parser.add_argument(
            "--runtime",
            choices=("process", "podman", "docker"),
            help="run jobs as processes with the project's Python (default: process) or in their "
            "job definitions' images with a container engine",
        )


def add_parser(subparsers: Any) -> None:
    """Add ``local`` with ``start``, ``stop``, ``status``, ``serve`` and ``env`` to ``batch-fanout``."""
    local = subparsers.add_parser("local", help="run the local AWS Batch endpoint")
    commands = local.add_subparsers(dest="local_command", metavar="ACTION")
    for name, function, helptext, with_port in (
        ("start", _start, "start in the background; prints the URL last", True),
        ("stop", _stop, "stop the endpoint that runs with the data directory", False),
        ("status", _status, "print URL and job counts; exit 0 only when it runs", False),
        ("serve", _serve, "run in the foreground", True),
    ):
        parser = commands.add_parser(name, help=helptext)
        _common(parser, with_port)
        parser.set_defaults(func=function)
    env = commands.add_parser(
        "env",
        help='print the export lines for the AWS CLI and boto3: eval "$(batch-fanout local env)"',
    )
    _common(env, with_port=False)
    env.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the URL when the endpoint is not running (default: {DEFAULT_PORT})",
    )
    env.set_defaults(func=_env)
    faults = commands.add_parser(
        "faults",
        help=(
            "print the faults in force; --set/--file/--clear replace them, --reclaim reclaims running"
            " jobs (see docs/local-endpoint.md)"
        ),
    )
    _common(faults, with_port=False)
    choice = faults.add_mutually_exclusive_group()
    choice.add_argument("--set", help="the new faults document, as JSON")
    choice.add_argument("--file", help="a file holding the new faults document")
    choice.add_argument("--clear", action="store_true", help="no faults")
    choice.add_argument(
        "--reclaim",
        nargs="+",
        metavar="JOB_ID",
        help="reclaim the running attempts of these jobs now, as Spot reclaims an instance",
    )
    choice.add_argument(
        "--reclaim-environment",
        nargs="+",
        metavar="COMPUTE_ENVIRONMENT",
        help="reclaim every running attempt of these compute environments now (the whole Spot fleet)",
    )
    faults.set_defaults(func=_faults)
    clock = commands.add_parser(
        "clock",
        help="print the scheduling clock that queues' time limits read; --advance moves it forward "
        "(see docs/local-endpoint.md)",
    )
    _common(clock, with_port=False)
    clock.add_argument("--advance", type=float, metavar="SECONDS", help="seconds to move the clock forward")
    clock.set_defaults(func=_clock)
    local.set_defaults(func=lambda args: (local.print_help(sys.stderr), 2)[1])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m batch_fanout.local ACTION``."""
    parser = argparse.ArgumentParser(prog="python -m batch_fanout.local")
    subparsers = parser.add_subparsers(dest="command")
    add_parser(subparsers)
    args = parser.parse_args(["local", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
