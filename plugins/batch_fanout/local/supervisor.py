"""The per-attempt supervisor (the role conmon plays for a container) and the fork server that starts it.

``python -m batch_fanout.local.supervisor JOURNAL [NOTIFY_FD]`` is the **fork server**: a small
single-threaded process that the endpoint starts once and asks, one JSON line per attempt on its stdin
(a scheduling round's attempts in one write), to start a supervisor. It forks (cheap: no new
interpreter per attempt, and safe: it has one thread) and answers the supervisor's pid and start time
on its stdout. It exits when its stdin closes, that is when the endpoint goes.

Each **supervisor** is a forked child of the fork server that at once leaves for its own session, so
nothing that kills the endpoint (``kill -9``, a closed terminal, Ctrl-C) reaches it. It runs one
attempt at a time; after each, once the endpoint has recorded the end and released it, it may take
another (see ``_supervise``); when the fork server is gone it exits instead. For each attempt it

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

Standard library only, so that the fork server starts in milliseconds. The module is over 400 lines
because the fork server and the supervisor are one program: a supervisor is a forked fork server, and
the descriptors, spares and request lines they share must be read as one.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
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

        self.wake_read, wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.requests.append("stop"))
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.requests.append("kill"))
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the selector

    def run(self, spec: dict[str, Any]) -> int:
        self.cause: str | None = None
        self.stop_requested = False
        self.kill_at: float | None = None
        self.returncode: int | None = None
        self.exited_at: int | None = None
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
        kill_argv = self.spec.get("killArgv")
        if kill_argv:
            # A container: its engine kills it (and its monitor, also below this supervisor, records
            # the exit); then the client goes.
            if self.returncode is None:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(
                        kill_argv, stdin=self.devnull, stdout=self.devnull, stderr=self.devnull, timeout=60
                    )
            signal_group(self.pid, signal.SIGKILL)
            return
        signal_group(self.pid, signal.SIGKILL)
        for pid in descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# Forked ahead while the fork server is idle: enough for a round of short jobs on a small machine.
SPARES = 4
# Released supervisors kept for reuse beyond this many exit instead.
MAX_IDLE = 64


@dataclass(frozen=True)
class _Descriptors:
    """What the fork server opens once and every supervisor inherits: the journal, ``/dev/null`` and
    the endpoint's notification pipe (non-blocking; ``None`` when the endpoint gave none)."""

    journal: int
    devnull: int
    notify: int | None


@dataclass(frozen=True)
class _Spare:
    """A supervisor of this fork server: it takes attempts on ``channel`` and answers on ``ready``
    (``r`` once released and ready for another attempt; end of file when it has exited)."""

    pid: int
    start_time: int | None
    channel: int
    ready: int

    def close(self) -> None:
        for descriptor in (self.channel, self.ready):
            with contextlib.suppress(OSError):
                os.close(descriptor)


class _Lines:
    """Lines read from a pipe, nothing read past the line asked for lost."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor
        self.pending = b""

    def next(self) -> bytes:
        while b"\n" not in self.pending:
            chunk = os.read(self.descriptor, 1 << 16)
            if not chunk:
                return b""
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line + b"\n"


def _supervise(descriptors: _Descriptors, channel: int, ready: int) -> int:
    """A supervisor's life: attempts, one after another, each after the endpoint released the last.

    Reusing a supervisor saves forking one per attempt (a forked Python writes to hundreds of the pages
    it shares with the fork server, and each is copied). Between two attempts it waits for ``release``:
    the endpoint sends it once it has recorded the previous attempt's end, so every stop or kill that was
    meant for that attempt was sent before, has been received, and is dropped here; only then does it
    say it is ready, so a stop meant for the next attempt cannot be dropped. It exits when the fork
    server goes (its channel closes).
    """
    supervision = _Supervision(descriptors)
    lines = _Lines(channel)
    while line := lines.next():
        supervision.run(json.loads(line))
        if lines.next() != b"release\n":
            break
        supervision.requests.clear()
        os.write(ready, b"r")
    return 0


def _fork_spare(descriptors: _Descriptors, others: list[_Spare]) -> _Spare:
    """Fork a supervisor that prepares itself (its own session, subreaper, signal handlers), then waits
    for its attempt: forking and preparing are then off the path of the attempt that takes it."""
    read_end, write_end = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = EXIT_INTERNAL_ERROR
        try:
            os.close(write_end)
            os.close(ready_read)
            for other in others:
                other.close()
            os.dup2(descriptors.devnull, 0)
            os.dup2(descriptors.devnull, 1)
            os.setsid()
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            become_subreaper()
            code = _supervise(descriptors, read_end, ready_write)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(read_end)
    os.close(ready_write)
    return _Spare(pid, process_start_time(pid), write_end, ready_read)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


class _Pool:
    """The fork server's supervisors: idle ones (``idle``, reused first), and all by ``ready`` pipe."""

    def __init__(self, descriptors: _Descriptors, selector: selectors.BaseSelector) -> None:
        self.descriptors = descriptors
        self.selector = selector
        self.idle: list[_Spare] = []
        self.by_pid: dict[int, _Spare] = {}

    def fork(self) -> _Spare:
        spare = _fork_spare(self.descriptors, list(self.by_pid.values()))
        self.by_pid[spare.pid] = spare
        self.selector.register(spare.ready, selectors.EVENT_READ, spare)
        return spare

    def drop(self, spare: _Spare) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(spare.ready)
        self.by_pid.pop(spare.pid, None)
        if spare in self.idle:
            self.idle.remove(spare)
        spare.close()

    def release(self, pid: int) -> None:
        """The endpoint recorded the end of this supervisor's attempt: it may take another."""
        spare = self.by_pid.get(pid)
        if spare is None:
            return
        if len(self.idle) >= MAX_IDLE:
            self.drop(spare)  # its channel closes: it exits
            return
        try:
            os.write(spare.channel, b"release\n")
        except OSError:
            self.drop(spare)

    def on_ready(self, spare: _Spare) -> None:
        """``r``: released and ready (idle again); end of file: it exited."""
        try:
            data = os.read(spare.ready, 64)
        except OSError:
            data = b""
        if data:
            self.idle.insert(0, spare)
        else:
            self.drop(spare)


def _start(request: dict[str, Any], pool: _Pool) -> dict[str, Any]:
    """Hand one request to an idle supervisor (forking one when none is idle); the answer's content."""
    spec = json.dumps(request["spec"]).encode() + b"\n"
    answer: dict[str, Any] = {"id": request["id"]}
    descriptors = pool.descriptors
    for _ in range(3):  # a supervisor that died (killed from outside) is replaced
        try:
            spare = pool.idle.pop(0) if pool.idle else pool.fork()
        except OSError as error:
            answer["error"] = str(error)
            break
        try:
            os.write(spare.channel, spec)
        except OSError as error:
            answer["error"] = str(error)
            pool.drop(spare)
            continue
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
    pending = b""
    with selectors.DefaultSelector() as selector:
        pool = _Pool(descriptors, selector)
        selector.register(requests, selectors.EVENT_READ, None)
        while True:
            lines = pending.split(b"\n")
            pending = lines.pop()
            replies: list[bytes] = []
            for line in lines:
                if not line.strip():
                    continue
                request = json.loads(line)
                if "release" in request:
                    pool.release(int(request["release"]))
                else:
                    replies.append(json.dumps(_start(request, pool)).encode() + b"\n")
            if replies:
                _write_all(answers, b"".join(replies))
            events = selector.select(0 if len(pool.idle) < SPARES else None)
            for key, _ in events:
                if key.data is not None:
                    pool.on_ready(key.data)
            if any(key.data is None for key, _ in events):
                chunk = os.read(requests, 1 << 16)
                if not chunk:
                    return 0
                pending += chunk
            elif not events and len(pool.idle) < SPARES:
                with contextlib.suppress(OSError):
                    pool.idle.append(pool.fork())


if __name__ == "__main__":
    sys.exit(serve_forks(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
