"""The report view's files: anything under a run's folder ``<results>/<dag_id>/<run_id>/`` in the
results store, read through fsspec (``file://``, ``s3://`` ...), and nothing outside it.

A requested path is checked as text first (no ``..`` segment, no absolute path, no backslash or
control character), then, for a local store, resolved with its symbolic links and checked again, so
a link inside the folder cannot lead out of it either.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
from dataclasses import dataclass
from typing import Any

REPORT_PAGE = "report/report.html"
#: The largest file the view serves (a report's tables and plots are far smaller).
MAX_BYTES = 64 * 1024 * 1024
#: Files the listing shows, by extension.
LISTED = (".csv", ".json", ".png", ".html", ".txt")


class BadPath(ValueError):
    """The requested path is not a file inside the run's folder (HTTP 400); the message names it."""


@dataclass(frozen=True)
class RunFolder:
    """A run's folder in the results store."""

    results_uri: str
    dag_id: str
    run_id: str

    def __post_init__(self) -> None:
        for name, value in (("dag_id", self.dag_id), ("run_id", self.run_id)):
            if not value or value in (".", "..") or "/" in value or "\\" in value:
                raise BadPath(f"{name} {value!r} cannot name a folder of the results store")

    @property
    def uri(self) -> str:
        return f"{self.results_uri.rstrip('/')}/{self.dag_id}/{self.run_id}"

    def _filesystem(self) -> tuple[Any, str]:
        import fsspec

        filesystem, root = fsspec.core.url_to_fs(self.uri)
        return filesystem, root.rstrip("/")

    def resolve(self, relative: str) -> tuple[Any, str]:
        """The filesystem and path of ``relative`` inside the folder.

        :raises BadPath: naming ``relative`` when it is not inside the folder.
        """
        if any(ord(c) < 32 for c in relative) or "\\" in relative:
            raise BadPath(f"path {relative!r} has a backslash or a control character")
        if relative.startswith("/") or posixpath.isabs(relative):
            raise BadPath(f"path {relative!r} is absolute; give a path inside the run's folder")
        parts = [part for part in relative.split("/") if part not in ("", ".")]
        if not parts:
            raise BadPath("empty path: name a file inside the run's folder")
        if ".." in parts:
            raise BadPath(f"path {relative!r} leads out of the run's folder")
        filesystem, root = self._filesystem()
        path = f"{root}/{'/'.join(parts)}"
        if _is_local(filesystem):
            real_root = os.path.realpath(root)
            real = os.path.realpath(path)
            if os.path.commonpath([real_root, real]) != real_root:
                raise BadPath(f"path {relative!r} leads out of the run's folder through a link")
        return filesystem, path

    def read(self, relative: str) -> tuple[bytes, str]:
        """The bytes and media type of one file of the folder.

        :raises BadPath: when the path is not inside the folder or is too large.
        :raises FileNotFoundError: naming the file when it does not exist.
        """
        filesystem, path = self.resolve(relative)
        try:
            info = filesystem.info(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri}/{relative} does not exist") from None
        if info.get("type") == "directory":
            raise BadPath(f"{relative!r} is a folder, not a file")
        if (info.get("size") or 0) > MAX_BYTES:
            raise BadPath(f"{relative!r} is larger than {MAX_BYTES // (1024 * 1024)} MiB")
        with filesystem.open(path, "rb") as handle:
            data = handle.read()
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if media.startswith("text/") or media == "application/json":
            media += "; charset=utf-8"
        return data, media

    def listing(self, folder: str = "report") -> list[dict[str, Any]]:
        """The files of a sub-folder (the report's tables, plots and pages), sorted by name."""
        filesystem, path = self.resolve(folder)
        try:
            entries = filesystem.ls(path, detail=True)
        except FileNotFoundError:
            return []
        files = []
        for entry in entries:
            name = posixpath.basename(str(entry["name"]).rstrip("/"))
            if entry.get("type") == "file" and name.endswith(LISTED):
                files.append({"path": f"{folder}/{name}", "name": name, "size": entry.get("size")})
        return sorted(files, key=lambda item: item["name"])


def _is_local(filesystem: Any) -> bool:
    protocol = filesystem.protocol
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return "file" in protocols or "local" in protocols
