"""The per-attempt supervisor (the role conmon plays for a container) and the fork server that starts it.

``python -m batch_fanout.local.supervisor`` is the **fork server**: a small single-threaded process that
the endpoint starts once and asks, one JSON line per attempt on its stdin, to start a supervisor. It
forks (cheap: no new interpreter per attempt, and safe: it has one thread) and answers the supervisor's
pid and start time on its stdout. It exits when its stdin closes, that is when the endpoint goes.

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
- writes ``<attempt>.pid.json`` (its own and the job's pid and start time) once the job runs, and
  ``<attempt>.status.json`` (return code, cause, time) when the job has ended and its output is
  written, both atomically. A status file therefore means "finished, log complete", whoever reads it.

Standard library only, so that the fork server starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from batch_fanout.local.logfile import LogWriter

MEMORY_CHECK_SECONDS = 0.25
OUTPUT_DRAIN_SECONDS = 1.0
PR_SET_CHILD_SUBREAPER = 36
EXIT_INTERNAL_ERROR = 70


def now_ms() -> int:
    return int(time.time() * 1000)


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc``), to recognise it after a restart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(item) for item in children.read().split())
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (``/proc/<pid>/task/*/children``, recursively)."""
    result: list[int] = []
    stack = _children(pid)
    while stack:
        child = stack.pop()
        result.append(child)
        stack.extend(_children(child))
    return result


def resident_bytes(pids: list[int]) -> int:
    page_size = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * page_size
        except (OSError, IndexError, ValueError):
            continue
    return total


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class _Supervision:
    """The state of one supervised job; see the module docstring for what it does."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.status_path = Path(spec["statusPath"])
        self.grace = float(spec["killGraceSeconds"])
        self.memory_bytes = int(spec.get("memoryMib") or 0) * 1024 * 1024
        self.requests: list[str] = []
        self.cause: str | None = None
        self.stop_requested = False
        self.kill_at: float | None = None
        self.returncode: int | None = None
        self.exited_at: int | None = None

    def run(self) -> int:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.requests.append("stop"))
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.requests.append("kill"))
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the selector
        writer = LogWriter(Path(self.spec["logPath"]), int(self.spec["maxLogBytes"]))
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                self.spec["argv"],
                cwd=self.spec["cwd"],
                env=self.spec["env"],
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                process_group=0,
                close_fds=True,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            write_json_atomically(self.status_path, {"startError": str(error), "exitedAt": now_ms()})
            return 0
        finally:
            os.close(write_end)
        self.pid = process.pid
        write_json_atomically(
            Path(self.spec["pidPath"]),
            {
                "supervisor": [os.getpid(), process_start_time(os.getpid())],
                "job": [process.pid, process_start_time(process.pid)],
            },
        )
        timeout = self.spec.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None
        next_memory = time.monotonic() if self.memory_bytes else None
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
        process.returncode = self.returncode  # reaped here; keeps Popen from waiting again
        self._kill_all()
        self._reap()
        writer.close(now_ms())
        write_json_atomically(
            self.status_path,
            {
                "returncode": self.returncode,
                "cause": self.cause,
                "stopRequested": self.stop_requested,
                "exitedAt": self.exited_at or now_ms(),
            },
        )
        return 0

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
        _signal_group(self.pid, signal.SIGTERM)
        if self.kill_at is None:
            self.kill_at = now + self.grace

    def _kill_all(self) -> None:
        _signal_group(self.pid, signal.SIGKILL)
        for pid in descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def supervise(spec: dict[str, Any]) -> int:
    """Run one attempt under supervision, in a freshly forked child of the fork server."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    _become_subreaper()
    return _Supervision(spec).run()


def serve_forks() -> int:
    """The fork server: one request (a JSON line with ``id`` and ``spec``) in, one answer line out."""
    # Supervisors are reaped by the kernel: the endpoint watches them with pidfds, not with wait().
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    devnull = os.open(os.devnull, os.O_RDWR)
    while line := requests.readline():
        request = json.loads(line)
        try:
            pid = os.fork()
        except OSError as error:
            answers.write(json.dumps({"id": request["id"], "error": str(error)}).encode() + b"\n")
            answers.flush()
            continue
        if pid == 0:
            code = EXIT_INTERNAL_ERROR
            try:
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                code = supervise(request["spec"])
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        answer = {"id": request["id"], "pid": pid, "startTime": process_start_time(pid)}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve_forks())
