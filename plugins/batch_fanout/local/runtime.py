"""Runtimes: how one attempt of a job becomes a supervised process, how it is stopped and found again.

The interface is small on purpose (a container runtime adds one class):

- ``Runtime.process_spec(request)``: turn an ``AttemptRequest`` (image, command, environment, limits)
  into a ``ProcessSpec`` (argv, working directory, environment) that a supervisor runs. The ``process``
  runtime resolves the image to its folder and runs the command there with the project's Python; a
  container runtime would return ``podman run ... <image> <command>`` and must forward SIGTERM to its
  container (``podman run`` and ``docker run`` do). ``LookupError`` means the image cannot be found
  (``CannotPullContainerError``), ``ValueError`` that the command cannot be formed.
- ``Supervision`` (shared by every runtime): ``launch`` starts a supervisor for a spec through the fork
  server (``supervisor.py``) and returns a ``SupervisorHandle``; ``stop`` asks the supervisor to stop
  the job (SIGTERM, SIGKILL after the grace) and ``kill`` to kill it now; ``find`` tells, after a
  restart of the endpoint, whether an attempt finished (its status in the journal), still runs (its
  supervisor, recognised by pid and start time) or is gone; ``status`` reads its status.

An attempt's output is ``<attempt>.log`` in the logs folder; what supervisors record is in the
journals there (``journal-<ns>.jsonl``, see ``supervisor.py``), read by ``Journal``. The module is over
400 lines because ``Journal``, ``ForkServer`` and ``Supervision`` are the endpoint's side of one
protocol with the supervisors; kept together, a change to that protocol is made in one place.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from batch_fanout.local.images import ImageResolver
from batch_fanout.local.processes import process_start_time

log = logging.getLogger(__name__)

# What a job inherits from the endpoint's own environment; the rest comes from its definition,
# like a container, which starts from a clean environment.
PASSED_ENVIRONMENT = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
SIGNAL_EXIT_BASE = 128


def exit_code_of(returncode: int) -> int:
    """The exit code a container reports: ``128 + signal`` for a process killed by a signal."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class AttemptRequest:
    """One attempt to run, as the scheduler sees it.

    :param attempt_id: the attempt's id (names its log stream and its files)
    :param image: the job definition's image
    :param command: the command after parameter substitution
    :param environment: the job's variables (definition, overrides, ``AWS_BATCH_*``)
    :param vcpus: its vCPUs
    :param memory_mib: its memory limit in MiB, 0 for none
    :param timeout_seconds: ``timeout.attemptDurationSeconds``, or ``None``
    :param job_definition: the job definition's name (a container runtime labels its container with it)
    :param init_process: ``linuxParameters.initProcessEnabled`` (a container runtime runs an init)
    :param gpus: the ids of the machine's GPUs the attempt was given
    """

    attempt_id: str
    image: str
    command: list[str]
    environment: dict[str, str]
    vcpus: float
    memory_mib: int
    timeout_seconds: int | None
    job_definition: str = ""
    init_process: bool = False
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProcessSpec:
    """A process for a supervisor to run: never through a shell.

    ``kill_argv``, when set, is what kills the job instead of SIGKILL to everything below the
    supervisor: a container engine's monitor (conmon) is below it too, and killing that would leave
    the engine's record of the container behind.
    """

    argv: list[str]
    cwd: Path
    environment: dict[str, str]
    kill_argv: list[str] | None = None


class Runtime(Protocol):
    """Turns an attempt into a process to supervise (see the module docstring)."""

    name: str

    def process_spec(self, request: AttemptRequest) -> ProcessSpec: ...


def job_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """The environment of a job: a few of the endpoint's, the project's Python first on PATH, then
    ``variables`` (the definition's, the overrides' and the ``AWS_BATCH_*`` ones)."""
    environment = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    python_bin = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([python_bin, os.environ.get("PATH", os.defpath)])
    environment["VIRTUAL_ENV"] = sys.prefix
    environment.update(variables)
    return environment


class ProcessRuntime:
    """The ``process`` runtime: the command runs with the project's Python in the image's folder.

    :param images: how images resolve to folders
    """

    name = "process"

    def __init__(self, images: ImageResolver) -> None:
        self.images = images

    def process_spec(self, request: AttemptRequest) -> ProcessSpec:
        folder = self.images.resolve(request.image)
        if not request.command:
            raise ValueError("the job has no command")
        return ProcessSpec(list(request.command), folder, job_environment(request.environment))


@dataclass(frozen=True)
class SupervisorHandle:
    """A running supervisor: its pid and start time (clock ticks since boot)."""

    attempt_id: str
    pid: int
    start_time: int | None


@dataclass(frozen=True)
class Found:
    """What ``Supervision.find`` learnt about an attempt after a restart: exactly one field is set."""

    status: dict[str, Any] | None = None
    running: SupervisorHandle | None = None
    gone: bool = False


class Journal:
    """What the fork servers and supervisors of a logs folder recorded, by attempt, read as it grows.

    :param logs_dir: the folder of the journals
    """

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self.records: dict[str, dict[str, Any]] = {}
        self.finished: set[str] = set()  # attempts whose status was read and not yet taken
        self._files: dict[Path, tuple[int, list[bytes]]] = {}  # path -> (descriptor, unfinished line)
        self.current: Path | None = None
        for path in sorted(logs_dir.glob("journal-*.jsonl")):
            self._open(path)
        self.read()

    def _open(self, path: Path) -> None:
        self._files[path] = (os.open(path, os.O_RDONLY | os.O_CREAT, 0o644), [b""])

    def new(self) -> Path:
        """A new journal for a new fork server (its name orders it after the others)."""
        path = self.logs_dir / f"journal-{time.time_ns()}.jsonl"
        self._open(path)
        self.current = path
        return path

    def read(self) -> None:
        """Take in the lines appended since the last read (only whole lines)."""
        for path, (descriptor, pending) in self._files.items():
            data = b""
            while chunk := os.read(descriptor, 1 << 16):
                data += chunk
            if not data:
                continue
            lines = (pending[0] + data).split(b"\n")
            pending[0] = lines.pop()
            for line in lines:
                try:
                    entry = json.loads(line)
                    attempt_id = str(entry.pop("attempt"))
                except (ValueError, KeyError, AttributeError):
                    log.warning("skipping an unreadable line of %s", path)
                    continue
                self.records.setdefault(attempt_id, {"journal": path}).update(entry)
                if "status" in entry:
                    self.finished.add(attempt_id)

    def get(self, attempt_id: str) -> dict[str, Any]:
        """What was recorded of ``attempt_id``, read again when its status is not known yet."""
        entry = self.records.get(attempt_id)
        if entry is None or "status" not in entry:
            self.read()
            entry = self.records.get(attempt_id)
        return entry or {}

    def forget(self, attempt_id: str) -> None:
        self.records.pop(attempt_id, None)
        self.finished.discard(attempt_id)

    def prune(self, live: set[str]) -> None:
        """Delete the journals (but the current one) that no attempt in ``live`` is recorded in."""
        needed = {self.records[attempt]["journal"] for attempt in live if attempt in self.records}
        for path in [path for path in self._files if path != self.current and path not in needed]:
            os.close(self._files.pop(path)[0])
            path.unlink(missing_ok=True)
        self.records = {key: value for key, value in self.records.items() if value["journal"] in self._files}
        self.finished &= self.records.keys()

    def close(self) -> None:
        for descriptor, _ in self._files.values():
            os.close(descriptor)
        self._files.clear()


class ForkServer:
    """The endpoint's side of ``python -m batch_fanout.local.supervisor``: one request, one answer.

    :param journal: where a new fork server gets its journal
    """

    # Requests written before their answers are read: their answers (about 60 bytes each) stay far
    # below a pipe's buffer, so neither side can block the other.
    BATCH = 64

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # Supervisors write a byte here once they have recorded a status (see ``Supervision.notify``).
        self.notify, self._notify_write = os.pipe()
        os.set_blocking(self.notify, False)
        os.set_blocking(self._notify_write, False)
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._process: subprocess.Popen[bytes] | None = None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            # Its own session: Ctrl-C in the endpoint's terminal does not reach it; it exits when its
            # stdin (this end) closes, so a killed endpoint leaves no fork server behind.
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "batch_fanout.local.supervisor",
                    str(self.journal.new()),
                    str(self._notify_write),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(self._notify_write,),
            )
        return self._process

    def fork(self, spec: dict[str, Any]) -> tuple[int, int | None]:
        """Start a supervisor for ``spec``: its pid and start time. ``OSError`` when it cannot."""
        result = self.fork_many([spec])[0]
        if isinstance(result, OSError):
            raise result
        return result

    def fork_many(self, specs: list[dict[str, Any]]) -> list[tuple[int, int | None] | OSError]:
        """Start a supervisor for each of ``specs`` in one round trip per ``BATCH`` of them: for each,
        its pid and start time, or the ``OSError`` that kept it from starting."""
        results: list[tuple[int, int | None] | OSError] = []
        with self._lock:
            for first in range(0, len(specs), self.BATCH):
                results.extend(self._round_trip(specs[first : first + self.BATCH]))
        return results

    def _round_trip(self, specs: list[dict[str, Any]]) -> list[tuple[int, int | None] | OSError]:
        answers: dict[int, tuple[int, int | None] | OSError] = {}
        waiting = dict(zip(itertools.islice(self._ids, len(specs)), specs, strict=True))
        order = list(waiting)
        for retry in (False, True):
            process = self._started()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(
                    b"".join(
                        json.dumps({"id": request_id, "spec": spec}).encode() + b"\n"
                        for request_id, spec in waiting.items()
                    )
                )
                process.stdin.flush()
                while waiting:
                    line = process.stdout.readline()
                    if not line:
                        break
                    answer = json.loads(line)
                    request_id = int(answer["id"])
                    waiting.pop(request_id, None)
                    if "error" in answer:
                        answers[request_id] = OSError(f"cannot fork a supervisor: {answer['error']}")
                    else:
                        answers[request_id] = (int(answer["pid"]), answer.get("startTime"))
            except OSError:
                pass
            if not waiting:
                break
            # The fork server exited: the requests it did not answer go to a new one, once.
            process.kill()
            process.wait()
            if retry:
                for request_id in waiting:
                    answers[request_id] = OSError("the supervisor fork server exited")
        return [answers[request_id] for request_id in order]

    def release(self, pids: list[int]) -> None:
        """Tell the fork server that these supervisors' attempts are recorded: they may take others."""
        with self._lock:
            process = self._process
            if not pids or process is None or process.poll() is not None:
                return
            assert process.stdin is not None
            with contextlib.suppress(OSError):
                process.stdin.write(b"".join(json.dumps({"release": pid}).encode() + b"\n" for pid in pids))
                process.stdin.flush()

    def stop(self) -> None:
        """Let the fork server exit (it does when its stdin closes)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                assert self._process.stdin is not None
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
                self._process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self.notify >= 0:
                os.close(self.notify)
                os.close(self._notify_write)
                self.notify = self._notify_write = -1


def _same_process(pid: int, start_time: int | None) -> bool:
    return start_time is not None and process_start_time(pid) == start_time


class Supervision:
    """Starts, stops and finds per-attempt supervisors (see the module docstring).

    :param logs_dir: where the attempts' logs and the journals live
    :param kill_grace_seconds: time from SIGTERM to SIGKILL when an attempt is stopped
    :param max_log_bytes: the size at which a log stream is cut
    """

    def __init__(self, logs_dir: Path, kill_grace_seconds: float, max_log_bytes: int) -> None:
        self.logs_dir = logs_dir
        self.kill_grace_seconds = kill_grace_seconds
        self.max_log_bytes = max_log_bytes
        self.journal = Journal(logs_dir)
        self.fork_server = ForkServer(self.journal)
        # Readable whenever a supervisor has recorded a status: ``finished()`` then says which.
        self.notify = self.fork_server.notify

    def log_path(self, attempt_id: str) -> Path:
        return self.logs_dir / f"{attempt_id}.log"

    def launch(self, request: AttemptRequest, spec: ProcessSpec) -> SupervisorHandle:
        """Start a supervisor that runs ``spec`` with ``request``'s limits. ``OSError`` when it cannot."""
        result = self.launch_many([(request, spec)])[0]
        if isinstance(result, OSError):
            raise result
        return result

    def launch_many(
        self, launches: list[tuple[AttemptRequest, ProcessSpec]]
    ) -> list[SupervisorHandle | OSError]:
        """``launch`` for many attempts in one round trip to the fork server: for each, its handle or
        the ``OSError`` that kept it from starting."""
        specs = [
            {
                "attemptId": request.attempt_id,
                "argv": spec.argv,
                "cwd": str(spec.cwd),
                "env": spec.environment,
                "logPath": str(self.log_path(request.attempt_id)),
                "maxLogBytes": self.max_log_bytes,
                "killGraceSeconds": self.kill_grace_seconds,
                "memoryMib": request.memory_mib,
                "timeoutSeconds": request.timeout_seconds,
                "killArgv": spec.kill_argv,
            }
            for request, spec in launches
        ]
        return [
            result if isinstance(result, OSError) else SupervisorHandle(request.attempt_id, *result)
            for (request, _), result in zip(launches, self.fork_server.fork_many(specs), strict=True)
        ]

    def status(self, attempt_id: str) -> dict[str, Any] | None:
        """The recorded status of a finished attempt, or ``None`` while it runs."""
        status: dict[str, Any] | None = self.journal.get(attempt_id).get("status")
        return status

    def finished(self) -> dict[str, dict[str, Any]]:
        """The statuses recorded since the last call (after reading what ``notify`` signalled)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.notify, 4096):
                pass
        self.journal.read()
        found = {attempt: self.journal.records[attempt]["status"] for attempt in self.journal.finished}
        self.journal.finished.clear()
        return found

    def release(self, handles: list[SupervisorHandle]) -> None:
        """The endpoint has recorded these attempts' ends: their supervisors may run other attempts
        (a supervisor whose fork server is gone exits instead)."""
        self.fork_server.release([handle.pid for handle in handles])

    def retire(self) -> None:
        """Start no more supervisors: the fork server exits, and each supervisor exits once its attempt
        has ended."""
        self.fork_server.stop()

    def forget(self, attempt_id: str) -> None:
        """The attempt is recorded by the endpoint: its journal entry is no longer needed."""
        self.journal.forget(attempt_id)

    def prune(self, live: set[str]) -> None:
        self.journal.prune(live)

    def _signal(self, handle: SupervisorHandle, sig: int) -> None:
        if _same_process(handle.pid, handle.start_time):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(handle.pid, sig)

    def stop(self, handle: SupervisorHandle) -> None:
        """Ask the supervisor to stop the job: SIGTERM to it, SIGKILL after the grace."""
        self._signal(handle, signal.SIGTERM)

    def kill(self, handle: SupervisorHandle) -> None:
        """Ask the supervisor to kill the job now."""
        self._signal(handle, signal.SIGUSR1)

    def find(self, attempt_id: str, handle: SupervisorHandle | None) -> Found:
        """After a restart: finished (a recorded status), still running (supervisor alive) or gone.

        A gone attempt's job process group, if it outlived its supervisor, is killed (recognised by its
        pid and start time).
        """
        entry = self.journal.get(attempt_id)
        if "status" in entry:
            return Found(status=entry["status"])
        supervisor, start_time = entry.get("supervisor"), entry.get("start")
        if supervisor and _same_process(int(supervisor), start_time):
            return Found(running=SupervisorHandle(attempt_id, int(supervisor), start_time))
        if handle is not None and _same_process(handle.pid, handle.start_time):
            return Found(running=handle)
        job = entry.get("job")
        if job and _same_process(int(job), entry.get("jobStart")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(job), signal.SIGKILL)
        # It may have recorded its status between the first look and now.
        status = self.status(attempt_id)
        return Found(status=status) if status is not None else Found(gone=True)

    def close(self) -> None:
        self.fork_server.close()
        self.journal.close()
