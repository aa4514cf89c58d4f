"""The per-attempt supervisor (the role conmon plays for a container) and the fork server that starts it.

``python -m batch_fanout.local.supervisor JOURNAL [NOTIFY_FD]`` is the **fork server**: a small
single-threaded process that the endpoint starts once and asks, one JSON line per attempt on its stdin
(a scheduling round's attempts in one write), to start a supervisor. It forks (cheap: no new
interpreter per attempt, and safe: it has one thread) and answers the supervisor's pid and start time
on its stdout. It exits when its stdin closes, that is when the endpoint goes.

Each **supervisor** is a forked child of the fork server that at once leaves for its own session, so
nothing that kills the endpoint (``kill -9``, a closed terminal, Ctrl-C) reaches it. It

- starts the job's command in a process group of its own (the job's), with stdout and stderr on a pipe
  that only the supervisor reads, so the job never writes to a pipe whose reader died with the
  endpoint;
- is a child subreaper, so that what the job leaves behind stays below it and is counted and killed;
- writes the output to the attempt's log file (``logfile.LogWriter``), and enforces the attempt's
  timeout (SIGTERM, SIGKILL after the grace) and memory limit (SIGKILL when the resident memory of the
  job's processes exceeds it, read from ``/proc`` every 0.25 s);
- stops the job on SIGTERM (SIGTERM to the job's group, SIGKILL after the grace) and kills it at once on
  SIGUSR1;
- records in the **journal** (below) the job's pid once it runs, and the attempt's status (return code,
  cause, time) once the job has ended and its output is written. A status line therefore means
  "finished, log complete", whoever reads it, whether the endpoint that started it is alive or not.

The journal is one append-only file per fork server (``journal-<ns>.jsonl`` in the logs folder), opened
once by the fork server and inherited by every supervisor, with one JSON line per event: the fork
server's ``{"attempt", "supervisor", "start"}`` before it answers, the supervisor's ``{"attempt",
"job"}`` and ``{"attempt", "status"}``. Each line is a single ``write`` on an ``O_APPEND`` descriptor,
so lines never interleave and no attempt creates a file of its own (creating files is the slowest
thing on the path of a short job); only a job with output gets its log file. After its status line a
supervisor writes one byte to the endpoint's notification pipe (inherited the same way), so that the
endpoint reads the journal at once instead of waiting for the supervisor to exit.

Standard library only, so that the fork server starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_fanout.local.logfile import LogWriter
from batch_fanout.local.processes import (
    become_subreaper,
    descendants,
    now_ms,
    process_start_time,
    record,
    resident_bytes,
    signal_group,
    spawn,
)

MEMORY_CHECK_SECONDS = 0.25
OUTPUT_DRAIN_SECONDS = 1.0
EXIT_INTERNAL_ERROR = 70


class _Supervision:
    """The state of one supervised job; see the module docstring for what it does."""

    def __init__(self, descriptors: _Descriptors) -> None:
        """Everything that needs no attempt: done while the supervisor waits as a spare."""
        self.journal = descriptors.journal
        self.devnull = descriptors.devnull
        self.notify = descriptors.notify
        self.requests: list[str] = []
        self.cause: str | None = None
        self.stop_requested = False
        self.kill_at: float | None = None
        self.returncode: int | None = None
        self.exited_at: int | None = None

        self.wake_read, wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.requests.append("stop"))
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.requests.append("kill"))
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the selector

    def run(self, spec: dict[str, Any]) -> int:
        self.spec = spec
        self.attempt_id = str(spec["attemptId"])
        self.grace = float(spec["killGraceSeconds"])
        self.memory_bytes = int(spec.get("memoryMib") or 0) * 1024 * 1024
        wake_read = self.wake_read
        writer = LogWriter(Path(self.spec["logPath"]), int(self.spec["maxLogBytes"]))
        read_end, write_end = os.pipe()
        try:
            self.pid = spawn(self.spec["argv"], self.spec["cwd"], self.spec["env"], self.devnull, write_end)
        except (OSError, ValueError) as error:
            self._record_status({"startError": str(error), "exitedAt": now_ms()})
            return 0
        finally:
            os.close(write_end)
        record(
            self.journal,
            {"attempt": self.attempt_id, "job": self.pid, "jobStart": process_start_time(self.pid)},
        )
        timeout = self.spec.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None
        next_memory = time.monotonic() + MEMORY_CHECK_SECONDS if self.memory_bytes else None
        drain_until: float | None = None
        os.set_blocking(read_end, False)
        selector = selectors.DefaultSelector()
        selector.register(read_end, selectors.EVENT_READ)
        selector.register(wake_read, selectors.EVENT_READ)
        output_open = True
        while output_open or self.returncode is None:
            moments = [m for m in (deadline, self.kill_at, next_memory, drain_until) if m is not None]
            wait = max(0.0, min(moments) - time.monotonic()) if moments else None
            for key, _ in selector.select(wait):
                if key.fd == wake_read:
                    with contextlib.suppress(OSError):
                        while os.read(wake_read, 4096):
                            pass
                    continue
                output_open = self._read(read_end, writer)
                if not output_open:
                    selector.unregister(read_end)
                    os.close(read_end)
            self._reap()
            now = time.monotonic()
            self._handle_requests(now)
            if self.returncode is None:
                if deadline is not None and now >= deadline:
                    deadline = None
                    self.cause = self.cause or "timeout"
                    self._stop(now)
                if self.kill_at is not None and now >= self.kill_at:
                    self.kill_at = None
                    self._kill_all()
                if next_memory is not None and now >= next_memory:
                    next_memory = now + MEMORY_CHECK_SECONDS
                    if resident_bytes(descendants(os.getpid())) > self.memory_bytes:
                        self.cause = "oom"
                        next_memory = None
                        self._kill_all()
            else:
                deadline = next_memory = self.kill_at = None
                if drain_until is None:
                    # A container ends with its main process: what it left behind goes too.
                    self._kill_all()
                    drain_until = now + OUTPUT_DRAIN_SECONDS
                elif now >= drain_until and output_open:
                    selector.unregister(read_end)
                    os.close(read_end)
                    output_open = False
        self._kill_all()
        self._reap()
        writer.close(now_ms())
        self._record_status(
            {
                "returncode": self.returncode,
                "cause": self.cause,
                "stopRequested": self.stop_requested,
                "exitedAt": self.exited_at or now_ms(),
            }
        )
        return 0

    def _record_status(self, status: dict[str, Any]) -> None:
        record(self.journal, {"attempt": self.attempt_id, "status": status})
        if self.notify is not None:
            # The endpoint learns of the end now, not when this process has exited; a full pipe
            # already says "read the journal", and a closed one means no endpoint is listening.
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            with contextlib.suppress(OSError):
                os.write(self.notify, b"\0")

    def _read(self, read_end: int, writer: LogWriter) -> bool:
        stamp = now_ms()
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                return False
            writer.feed(chunk, stamp)
            if len(chunk) < 65536:
                return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.returncode is None:
                self.returncode = os.waitstatus_to_exitcode(status)
                self.exited_at = now_ms()

    def _handle_requests(self, now: float) -> None:
        while self.requests:
            request = self.requests.pop(0)
            if self.returncode is not None:
                continue
            self.stop_requested = True
            if request == "kill":
                self._kill_all()
            else:
                self._stop(now)

    def _stop(self, now: float) -> None:
        signal_group(self.pid, signal.SIGTERM)
        if self.kill_at is None:
            self.kill_at = now + self.grace

    def _kill_all(self) -> None:
        signal_group(self.pid, signal.SIGKILL)
        for pid in descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# Forked ahead while the fork server is idle: enough for a round of short jobs on a small machine.
SPARES = 4


@dataclass(frozen=True)
class _Descriptors:
    """What the fork server opens once and every supervisor inherits: the journal, ``/dev/null`` and
    the endpoint's notification pipe (non-blocking; ``None`` when the endpoint gave none)."""

    journal: int
    devnull: int
    notify: int | None


@dataclass(frozen=True)
class _Spare:
    """A supervisor forked ahead of need, waiting for its attempt on ``channel``."""

    pid: int
    start_time: int | None
    channel: int


def _read_line(descriptor: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(descriptor, 1 << 16)
        if not chunk:
            return b""
        data += chunk
    return data


def _fork_spare(descriptors: _Descriptors, spares: list[_Spare]) -> _Spare:
    """Fork a supervisor that prepares itself (its own session, subreaper, signal handlers), then waits
    for its attempt: forking and preparing are then off the path of the attempt that takes it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = EXIT_INTERNAL_ERROR
        try:
            os.close(write_end)
            for spare in spares:
                os.close(spare.channel)
            os.dup2(descriptors.devnull, 0)
            os.dup2(descriptors.devnull, 1)
            os.setsid()
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            become_subreaper()
            supervision = _Supervision(descriptors)
            line = _read_line(read_end)
            os.close(read_end)
            # No attempt: the fork server went away before it needed this spare.
            code = supervision.run(json.loads(line)) if line else 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(read_end)
    return _Spare(pid, process_start_time(pid), write_end)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _start(request: dict[str, Any], descriptors: _Descriptors, spares: list[_Spare]) -> dict[str, Any]:
    """Hand one request to a spare (forking one when none is left); the answer line's content."""
    spec = json.dumps(request["spec"]).encode() + b"\n"
    answer: dict[str, Any] = {"id": request["id"]}
    for _ in range(3):  # a spare that died (killed from outside) is replaced
        try:
            spare = spares.pop(0) if spares else _fork_spare(descriptors, spares)
        except OSError as error:
            answer["error"] = str(error)
            break
        try:
            os.write(spare.channel, spec)
        except OSError as error:
            answer["error"] = str(error)
            continue
        finally:
            os.close(spare.channel)
        answer.pop("error", None)
        record(
            descriptors.journal,
            {"attempt": request["spec"]["attemptId"], "supervisor": spare.pid, "start": spare.start_time},
        )
        answer.update(pid=spare.pid, startTime=spare.start_time)
        break
    return answer


def serve_forks(journal_path: str, notify: int | None = None) -> int:
    """The fork server: request lines (a JSON object with ``id`` and ``spec`` each) in, one answer line
    per request out.

    Every request already received is answered, in one write, before anything else is done, so a batch
    of requests (the engine sends every attempt of a scheduling round at once) costs one round trip.
    Spares are forked only while no request waits, up to ``SPARES``: forking is then off the path of
    the attempts, and never competes with a batch for the CPU.

    :param journal_path: the journal this fork server and its supervisors append to
    :param notify: a pipe to write a byte to whenever a supervisor has recorded a status
    """
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if notify is not None:
        os.set_inheritable(notify, False)  # supervisors have it (forked), their jobs do not (spawned)
    # Supervisors are reaped by the kernel: the endpoint watches them with pidfds, not with wait().
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.fileno(), sys.stdout.fileno()
    descriptors = _Descriptors(journal, os.open(os.devnull, os.O_RDWR), notify)
    # Objects that exist now are never collected: a supervisor's collections then leave the pages it
    # shares with the fork server unwritten, so forking one copies almost nothing.
    gc.freeze()
    spares: list[_Spare] = []
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(requests, selectors.EVENT_READ)
        while True:
            lines = pending.split(b"\n")
            pending = lines.pop()
            replies = [
                json.dumps(_start(json.loads(line), descriptors, spares)).encode() + b"\n"
                for line in lines
                if line.strip()
            ]
            if replies:
                _write_all(answers, b"".join(replies))
            if len(spares) < SPARES and not selector.select(0):
                try:
                    spares.append(_fork_spare(descriptors, spares))
                except OSError:
                    pass
                else:
                    continue
            chunk = os.read(requests, 1 << 16)
            if not chunk:
                return 0
            pending += chunk


if __name__ == "__main__":
    sys.exit(serve_forks(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
