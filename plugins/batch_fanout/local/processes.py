"""Process helpers of the supervisor (standard library only): start a job with ``posix_spawn``, find
what runs below a process, read its memory and start time, and write journal lines."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


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


def record(journal: int, entry: dict[str, Any]) -> None:
    """Append one line to the journal, in one ``write`` (whole, never interleaved with another)."""
    os.write(journal, json.dumps(entry, separators=(",", ":")).encode() + b"\n")


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


def spawn(argv: list[str], cwd: str, environment: dict[str, str], stdin: int, output: int) -> int:
    """Start ``argv`` in ``cwd`` as a new process group, never through a shell; returns its pid.

    ``posix_spawn`` (a vfork and an exec in glibc) rather than ``subprocess``, which forks this Python
    process: it is the costliest step of a short job. The program is looked up on the job's own
    ``PATH``. Every descriptor of this process is close-on-exec (Python's default), so the job gets
    only its stdin, stdout and stderr.
    """
    if not argv:
        raise ValueError("the job has no command")
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program, path=environment.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", program)
        program = found
    os.chdir(cwd)  # this process exists for this job only; the job inherits its working directory
    return os.posix_spawn(
        program,
        argv,
        environment,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin, 0),
            (os.POSIX_SPAWN_DUP2, output, 1),
            (os.POSIX_SPAWN_DUP2, output, 2),
        ],
        setpgroup=0,
        setsigdef=(
            signal.SIGPIPE,
            signal.SIGXFSZ,
            signal.SIGINT,
            signal.SIGTERM,
            signal.SIGUSR1,
            signal.SIGCHLD,
        ),
    )


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
