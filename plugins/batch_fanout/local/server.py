"""The HTTP server: AWS Batch (REST-JSON) and CloudWatch Logs (JSON 1.1) on one loopback port."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from batch_fanout.local import DEFAULT_HOST
from batch_fanout.local.auth import (
    CREDENTIALS_FILE,
    LocalCredentials,
    check_request_origin,
    ensure_credentials,
    load_credentials,
    verify_signature,
)
from batch_fanout.local.batch_api import MAX_SUBMIT_BYTES, BatchApi
from batch_fanout.local.engine import DEFAULT_KILL_GRACE_SECONDS, DEFAULT_MAX_LOG_BYTES, Engine
from batch_fanout.local.errors import ApiError
from batch_fanout.local.faults import FAULTS_PATH, RECLAIM_PATH, reclaim_request
from batch_fanout.local.logs_api import LogsApi
from batch_fanout.local.protocol import logs_operation, route_batch_request, validate_input

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
STATE_FILE = "endpoint.json"
PID_FILE = "endpoint.pid"
STATUS_PATH = "/_local/status"
LOCAL_PREFIX = "/_local/"
CLOCK_PATH = "/_local/clock"


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, engine: Engine, credentials: LocalCredentials) -> None:
        self.engine = engine
        self.credentials = credentials
        self.batch = BatchApi(engine)
        self.logs = LogsApi(engine)
        super().__init__((DEFAULT_HOST, port), RequestHandler)
        self.port = int(self.server_address[1])


class RequestHandler(BaseHTTPRequestHandler):
    server: EndpointServer
    protocol_version = "HTTP/1.1"
    # A client that sends less than it announced must not hold a thread for ever.
    timeout = 60
    # One write per response and no Nagle delay: otherwise each keep-alive call waits ~40 ms for a
    # delayed ACK.
    disable_nagle_algorithm = True
    server_version = "batch-fanout-local"
    # The region the verified signature names: the endpoint answers every region as that region.
    _signed_region = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        # A CORS preflight: refused like any browser request, with no Access-Control-* grant.
        json_protocol = self.headers.get("X-Amz-Target") is not None
        self.close_connection = True
        try:
            check_request_origin(self.headers.items(), self.server.port)
            error = ApiError("AccessDeniedException", "OPTIONS is not answered: no cross-origin access", 403)
        except ApiError as refused:
            error = refused
        self._send_error(error, json_protocol)

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ApiError("ClientException", "Chunked request bodies are not supported; send Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            self.close_connection = True
            raise ApiError("ClientException", f"Invalid Content-Length {length_header!r}") from None
        if length < 0:
            self.close_connection = True
            raise ApiError("ClientException", f"Invalid Content-Length {length_header!r}")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(
                "ClientException",
                f"Request body of {length} bytes is larger than the {MAX_BODY_BYTES} byte limit",
            )
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        target = self.headers.get("X-Amz-Target")
        json_protocol = target is not None
        try:
            try:
                check_request_origin(self.headers.items(), self.server.port)
            except ApiError:
                # The body was not read: the connection cannot carry another request.
                self.close_connection = True
                raise
            body = self._read_body()
            # /_local/* is signed as Batch: nothing is readable without the endpoint's credentials.
            service = "logs" if json_protocol else "batch"
            self._signed_region = verify_signature(
                self.command,
                self.path,
                self.headers.items(),
                body,
                credentials=self.server.credentials,
                service=service,
            )
            if self.path == FAULTS_PATH and self.command in ("GET", "PUT"):
                faults = self.server.engine.faults
                if self.command == "PUT":
                    faults.replace(self._decode(body, "ClientException"))
                    self.server.engine.wake()  # capacity may have changed
                self._send(200, faults.current())
                return
            if self.path == CLOCK_PATH and self.command in ("GET", "PUT"):
                clock = self.server.engine.scheduler.clock
                if self.command == "PUT":
                    with self.server.engine.lock:
                        clock.advance(self._decode(body, "ClientException"))
                    self.server.engine.wake()  # time limits may have fallen due
                self._send(200, clock.current())
                return
            if self.path == RECLAIM_PATH and self.command == "POST":
                self._send(200, self._reclaim(*reclaim_request(self._decode(body, "ClientException"))))
                return
            if self.path.startswith(LOCAL_PREFIX):
                if self.path != STATUS_PATH or self.command != "GET":
                    raise ApiError(
                        "UnknownOperationException", f"Unknown operation: {self.command} {self.path}", 404
                    )
                self._send(200, self._status())
                return
            if json_protocol:
                self._send(200, self._logs(target or "", body))
            else:
                self._send(200, self._batch(body))
        except ApiError as error:
            self._send_error(error, json_protocol)
        except Exception as error:  # a bug must not take the endpoint down; answer and log it
            log.exception("internal error on %s %s", self.command, self.path)
            self._send_error(
                ApiError("ServerException", f"Internal error: {type(error).__name__}", 500), json_protocol
            )

    @staticmethod
    def _decode(body: bytes, error_code: str) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            params = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(error_code, f"Request body is not valid JSON: {error}") from None
        if not isinstance(params, dict):
            raise ApiError(error_code, f"Request body must be a JSON object, got {type(params).__name__}")
        return params

    def _batch(self, body: bytes) -> dict[str, Any]:
        routed = route_batch_request(self.command, self.path)
        if routed is None:
            raise ApiError(
                "UnknownOperationException",
                f"Unknown operation: {self.command} {self.path.split('?')[0]}",
                404,
            )
        operation, uri_params = routed
        # AWS refuses a throttled call before it looks at the call's input, as this does.
        self.server.engine.faults.throttle(operation)
        handler = self.server.batch.handlers.get(operation)
        if handler is None:
            raise ApiError("ClientException", f"{operation} is not supported by the local endpoint")
        if operation == "SubmitJob" and len(body) > MAX_SUBMIT_BYTES:
            raise ApiError(
                "ClientException",
                f"SubmitJob request of {len(body)} bytes is larger than the 30 KiB ({MAX_SUBMIT_BYTES} bytes) limit",
            )
        params = self._decode(body, "ClientException") if self.command in ("POST", "PUT") else {}
        params.update(uri_params)
        validate_input("batch", operation, params, "ClientException")
        return handler(params, self._signed_region)

    def _logs(self, target: str, body: bytes) -> dict[str, Any]:
        operation = logs_operation(target)
        if operation is None or self.command != "POST":
            raise ApiError("UnknownOperationException", f"Unknown operation: {target}")
        self.server.engine.faults.throttle(operation, "logs")  # before validation, as on AWS
        handler = self.server.logs.handlers.get(operation)
        if handler is None:
            raise ApiError("InvalidOperationException", f"{operation} is not supported by the local endpoint")
        params = self._decode(body, "SerializationException")
        validate_input("logs", operation, params, "InvalidParameterException")
        return handler(params, self._signed_region)

    def _reclaim(self, job_ids: list[str], environments: list[str]) -> dict[str, Any]:
        """Reclaim the running attempts of ``job_ids`` and of the compute environments ``environments``
        (each must exist); refused when none runs."""
        engine = self.server.engine
        with engine.lock:
            jobs = []
            for job_id in job_ids:
                job = engine.scheduler.jobs.get(job_id)
                if job is None:
                    raise ApiError("ClientException", f"Job {job_id} not found")
                jobs.append(job)
            names = []
            for reference in environments:
                environment = engine.registry.compute_environments.find(reference)
                if environment is None:
                    raise ApiError("ClientException", f"Compute environment {reference} not found")
                names.append(str(environment["computeEnvironmentName"]))
            reclaimed = [target.job_id for job in jobs for target in engine.reclaim(job)]
            reclaimed += [target.job_id for name in names for target in engine.reclaim_environment(name)]
        if not reclaimed:
            raise ApiError(
                "ClientException",
                f"Nothing to reclaim: no attempt of {', '.join(job_ids + environments)} is STARTING or RUNNING",
            )
        return {"reclaimed": reclaimed}

    def _status(self) -> dict[str, Any]:
        return {
            "counts": self.server.engine.counts(),
            "pid": os.getpid(),
            "gpus": self.server.engine.gpu_status(),
        }

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        content_type = (
            "application/x-amz-json-1.1" if self.headers.get("X-Amz-Target") else "application/json"
        )
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", os.urandom(16).hex())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined]
        self.flush_headers()

    def _send_error(self, error: ApiError, json_protocol: bool) -> None:
        try:
            self._send(
                error.status,
                {"__type": error.code, "message": error.message},
                {"x-amzn-ErrorType": error.code},
            )
        except OSError:
            self.close_connection = True


def serve(
    data_dir: Path,
    port: int,
    containers_dir: Path | None,
    *,
    vcpus: int | None = None,
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    credentials_file: Path | None = None,
    runtime: str = "process",
    gpus: int | None = None,
) -> int:
    """Run the endpoint in the foreground until SIGTERM or SIGINT; then stop gracefully.

    Writes ``endpoint.json`` (URL, port, pid, the credentials file's path) and ``endpoint.pid`` in
    ``data_dir`` once it answers.

    :param data_dir: the data directory
    :param port: the TCP port on 127.0.0.1 (0 picks a free one)
    :param containers_dir: the folder of image folders (``None``: only ``images.json`` resolves)
    :param vcpus: the default compute environment's vCPUs
    :param kill_grace_seconds: time between SIGTERM and SIGKILL when an attempt is stopped
    :param max_log_bytes: the size at which a log stream is cut
    :param credentials_file: the credentials to verify signatures with (default: the data directory's
        own, created on first start)
    :param runtime: ``process`` (the project's Python) or a container engine, ``podman`` or ``docker``
    :param gpus: the machine's GPUs (``None``: as many as the NVIDIA driver lists)
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_file = open(data_dir / "endpoint.lock", "w")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.error("another local endpoint is running with the data directory %s", data_dir)
        return 1
    try:
        credentials = load_credentials(credentials_file) if credentials_file else ensure_credentials(data_dir)
    except ValueError as error:
        log.error("%s", error)
        return 1
    container_runtime = None
    if runtime != "process":
        from batch_fanout.images.engine import ContainerEngine, EngineError
        from batch_fanout.local.runtimes.container import ContainerRuntime

        try:
            container_runtime = ContainerRuntime(ContainerEngine.detect(runtime), data_dir)
        except EngineError as error:
            log.error("runtime %s: %s", runtime, error)
            return 1
    engine = Engine(
        data_dir,
        containers_dir,
        vcpus,
        kill_grace_seconds,
        max_log_bytes,
        runtime=container_runtime,
        gpus=gpus,
    )
    server = EndpointServer(port, engine, credentials)
    actual_port = server.port
    url = f"http://{DEFAULT_HOST}:{actual_port}"
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    engine.start()
    # The path of the secret, never the secret: `batch-fanout local env` reads it from there.
    state = {
        "url": url,
        "port": actual_port,
        "pid": os.getpid(),
        "runtime": runtime,
        "credentials_file": str(
            credentials_file.resolve() if credentials_file else data_dir / CREDENTIALS_FILE
        ),
    }
    temporary = data_dir / f".{STATE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(state))
    os.replace(temporary, data_dir / STATE_FILE)
    (data_dir / PID_FILE).write_text(f"{os.getpid()}\n")
    log.info(
        "local AWS Batch endpoint listening on %s (data directory %s, access key %s)",
        url,
        data_dir,
        credentials.access_key_id,
    )
    print(url, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        engine.stop()
        _remove_if_ours(data_dir / STATE_FILE, data_dir / PID_FILE)
        log.info("local AWS Batch endpoint stopped")
    return 0


def _remove_if_ours(state_file: Path, pid_file: Path) -> None:
    """Remove the state and pid files, unless another endpoint has taken the directory over."""
    try:
        ours = json.loads(state_file.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError):
        ours = True
    if ours:
        state_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
