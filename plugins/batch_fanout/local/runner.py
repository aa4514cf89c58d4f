"""Running one attempt of a job as a local process group, and capturing its output as a log stream."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import batch_fanout
from batch_fanout.local import CONTAINERS_DIR_ENV

IMAGE_MAP_FILE = "images.json"
# What a job inherits from the endpoint's own environment; the rest comes from its definition,
# like a container, which starts from a clean environment.
PASSED_ENVIRONMENT = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
LOG_CUT_MARKER = "[local endpoint: this log stream was cut at {limit} bytes; later output was dropped]"


def default_containers_dir() -> Path:
    """``BATCH_FANOUT_CONTAINERS_DIR``, else ``include/containers`` of the project the package is in."""
    configured = os.environ.get(CONTAINERS_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(batch_fanout.__file__).resolve().parent.parent.parent / "include" / "containers"


class ImageResolver:
    """Maps an image to the folder that holds its code.

    ``<registry>/<namespace>/<name>:<tag>`` resolves to ``<containers_dir>/<name>/``; any image can also
    be mapped explicitly in ``<data_dir>/images.json`` (``{"image": "folder"}``, relative folders are
    relative to the data directory), which takes precedence.

    :param containers_dir: the folder of image folders
    :param data_dir: the endpoint's data directory
    """

    def __init__(self, containers_dir: Path, data_dir: Path) -> None:
        self.containers_dir = containers_dir
        self.map_file = data_dir / IMAGE_MAP_FILE
        self._map: dict[str, str] = {}
        self._map_stamp: tuple[int, int] | None = None

    def _image_map(self) -> dict[str, str]:
        try:
            stat = self.map_file.stat()
        except FileNotFoundError:
            self._map, self._map_stamp = {}, None
            return self._map
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._map_stamp:
            loaded = json.loads(self.map_file.read_text())
            if not isinstance(loaded, dict):
                raise ValueError(f"{self.map_file} must hold a JSON object of image -> folder")
            self._map = {str(key): str(value) for key, value in loaded.items()}
            self._map_stamp = stamp
        return self._map

    def resolve(self, image: str) -> Path:
        """The folder of ``image``; ``LookupError`` naming the image when there is none."""
        try:
            mapped = self._image_map().get(image)
        except (OSError, ValueError) as error:
            raise LookupError(f"cannot read the image map {self.map_file}: {error}") from error
        if mapped is not None:
            folder = Path(mapped)
            if not folder.is_absolute():
                folder = self.map_file.parent / folder
            if folder.is_dir():
                return folder
            raise LookupError(f"image {image} is mapped to {folder}, which is not a folder")
        name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        folder = self.containers_dir / name
        if name and name not in (".", "..") and folder.is_dir():
            return folder
        raise LookupError(
            f"image {image} has no local folder: neither {folder} nor an entry in {self.map_file}"
        )


def job_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """The environment of a job: a few of the endpoint's, the project's Python first on PATH, then
    ``variables`` (the definition's, the overrides' and the ``AWS_BATCH_*`` ones)."""
    environment = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    python_bin = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([python_bin, os.environ.get("PATH", os.defpath)])
    environment["VIRTUAL_ENV"] = sys.prefix
    environment.update(variables)
    return environment


def spawn(
    command: Sequence[str], folder: Path, environment: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``command`` in ``folder`` as a new process group, never through a shell.

    :return: the process and the read end of a pipe carrying its stdout and stderr
    """
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            list(command),
            cwd=folder,
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    os.set_blocking(read_end, False)
    return process, read_end


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc``), to recognise it after a restart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_rss_bytes(pgids: set[int]) -> dict[int, int]:
    """Resident memory of each process group in ``pgids``, summed over its processes (``/proc``)."""
    totals = dict.fromkeys(pgids, 0)
    page_size = os.sysconf("SC_PAGE_SIZE")
    try:
        entries = os.listdir("/proc")
    except OSError:
        return totals
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (field 3 of stat(5)); pgrp is field 5, rss field 24.
        try:
            pgrp = int(fields[2])
            if pgrp in totals:
                totals[pgrp] += int(fields[21]) * page_size
        except (IndexError, ValueError):
            continue
    return totals


def memory_enforcement_available() -> bool:
    return os.path.isdir("/proc/self") and os.path.exists("/proc/self/stat")


class LogWriter:
    """Writes one attempt's output as timestamped events, capped in size with a marker.

    A line holds ``<epoch-ms> <message>``; the file is created on the first output.

    :param path: the log file
    :param limit: the most bytes of messages kept
    """

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.written = 0
        self.cut = False
        self._pending = b""
        self._file: BinaryIO | None = None

    def feed(self, data: bytes, timestamp: int) -> None:
        if self.cut:
            return
        data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > 65536:  # a line without end: emit it in pieces
            lines.append(self._pending)
            self._pending = b""
        for line in lines:
            self._emit(line, timestamp)
            if self.cut:
                return

    def close(self, timestamp: int) -> None:
        if self._pending and not self.cut:
            self._emit(self._pending, timestamp)
        self._pending = b""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _emit(self, line: bytes, timestamp: int) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.written + len(line) > self.limit:
            self.cut = True
            line = LOG_CUT_MARKER.format(limit=self.limit).encode()
        else:
            self.written += len(line) + 1
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open while the attempt runs
        self._file.write(b"%d %s\n" % (timestamp, line))
        self._file.flush()


def read_log_events(path: Path) -> list[dict[str, Any]]:
    """The events of a log file written by ``LogWriter``: ``timestamp``, ``message``."""
    events = []
    try:
        with open(path, "rb") as log:
            for raw in log:
                stamp, _, message = raw.rstrip(b"\n").partition(b" ")
                try:
                    timestamp = int(stamp)
                except ValueError:
                    continue
                events.append({"timestamp": timestamp, "message": message.decode("utf-8", "replace")})
    except FileNotFoundError:
        pass
    return events


SIGNAL_EXIT_BASE = 128


def exit_code_of(returncode: int) -> int:
    """The exit code a container reports: ``128 + signal`` for a process killed by a signal."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


__all__ = [
    "SIGNAL_EXIT_BASE",
    "ImageResolver",
    "LogWriter",
    "default_containers_dir",
    "exit_code_of",
    "group_rss_bytes",
    "job_environment",
    "kill_group",
    "process_start_time",
    "read_log_events",
    "spawn",
]
