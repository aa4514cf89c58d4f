"""The log file of one attempt: timestamped lines, capped in size, and how to read them back.

Standard library only: the per-attempt supervisor writes these files, and it must start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

LOG_CUT_MARKER = "[local endpoint: this log stream was cut at {limit} bytes; later output was dropped]"
# A line without an end is emitted in pieces of this size, so that one line cannot hold memory.
MAX_LINE_BYTES = 65536


class LogWriter:
    """Writes one attempt's output as timestamped events, capped in size with a marker.

    A line holds ``<epoch-ms> <message>``; the file is created on the first output and flushed after
    every line, so that GetLogEvents shows a running job's output as it comes.

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
        if len(self._pending) > MAX_LINE_BYTES:
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
