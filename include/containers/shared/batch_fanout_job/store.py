"""The results store of one run, read and written through fsspec.

Everything a run writes lives under ``<RESULTS_URI>/<RUN_PREFIX>/``. Writes are atomic: on a local file
system the bytes go to a temporary name in the same folder and are renamed into place; an S3 put is
atomic by itself. A reader therefore never sees half an output.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec

from batch_fanout_job.errors import BadInputError, JobError

RESULTS_URI_VARIABLE = "RESULTS_URI"
RUN_PREFIX_VARIABLE = "RUN_PREFIX"


class RunStore:
    """The folder of one run in the results store.

    :param results_uri: base of the store, ``s3://bucket/prefix`` or ``file:///abs/path``.
    :param run_prefix: the run's folder below it, ``<dag_id>/<run_id>`` (may be empty).
    """

    def __init__(self, results_uri: str, run_prefix: str = "") -> None:
        if not results_uri:
            raise JobError(
                f"{RESULTS_URI_VARIABLE} is not set: give the results store, e.g. file:///tmp/results"
            )
        if "://" not in results_uri:
            raise JobError(
                f"{RESULTS_URI_VARIABLE}={results_uri!r} is not a URI: use s3://bucket/prefix or file:///abs/path"
            )
        try:
            self.fs, base = fsspec.core.url_to_fs(results_uri)
        except (ImportError, ValueError) as error:
            raise JobError(
                f"{RESULTS_URI_VARIABLE}={results_uri!r}: cannot open the store: {error}"
            ) from error
        self.results_uri = results_uri
        self.run_prefix = run_prefix.strip("/")
        self.root = f"{base.rstrip('/')}/{self.run_prefix}" if self.run_prefix else base.rstrip("/")
        self._local = "file" in _protocols(self.fs)
        if self._local and not os.path.isdir(base):
            raise JobError(f"{RESULTS_URI_VARIABLE}={results_uri!r}: the folder {base} does not exist")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunStore:
        """Build the store from ``RESULTS_URI`` and ``RUN_PREFIX``.

        :param environ: the job's environment.
        """
        return cls(
            environ.get(RESULTS_URI_VARIABLE, "").strip(), environ.get(RUN_PREFIX_VARIABLE, "").strip()
        )

    def uri(self, key: str = "") -> str:
        """The full URI of ``key`` below the run folder (for messages and reports)."""
        base = self.results_uri.rstrip("/")
        parts = [part for part in (base, self.run_prefix, key) if part]
        return "/".join(parts)

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def read_bytes(self, key: str) -> bytes:
        """Read one object.

        :raises JobError: naming the object when it is missing or unreadable.
        """
        try:
            with self.fs.open(self.path(key), "rb") as handle:
                return bytes(handle.read())
        except FileNotFoundError as error:
            raise JobError(f"{self.uri(key)} does not exist") from error
        except OSError as error:
            raise JobError(f"{self.uri(key)} cannot be read: {error}") from error

    def read_text(self, key: str) -> str:
        data = self.read_bytes(key)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JobError(f"{self.uri(key)} is not UTF-8 text: {error}") from error

    def read_json(self, key: str) -> Any:
        text = self.read_text(key)
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise JobError(f"{self.uri(key)} is not valid JSON: {error}") from error

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write one object atomically and return its URI.

        :param key: path below the run folder, e.g. ``stress/3.json``.
        :param data: the whole content.
        """
        target = self.path(key)
        try:
            if self._local:
                folder = os.path.dirname(target)
                os.makedirs(folder, exist_ok=True)
                temporary = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
                try:
                    with open(temporary, "wb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(temporary, target)
                finally:
                    if os.path.exists(temporary):
                        os.unlink(temporary)
            else:
                self.fs.pipe_file(target, data)
        except OSError as error:
            raise JobError(f"cannot write {self.uri(key)}: {error}") from error
        return self.uri(key)

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode("utf-8"))

    def write_json(self, key: str, document: Any) -> str:
        return self.write_text(key, json.dumps(document, indent=2, sort_keys=True) + "\n")

    def delete(self, key: str) -> None:
        """Remove one object if it exists (used to withdraw a stale output before a failure)."""
        if self.exists(key):
            self.fs.rm(self.path(key))

    def delete_folder(self, key: str) -> list[str]:
        """Remove every object below ``key`` (a folder), and return the keys removed.

        :raises JobError: naming the folder when an object cannot be removed.
        """
        prefix = self.path(key).rstrip("/") + "/"
        try:
            found = sorted(path for path in self.fs.find(prefix) if path.startswith(prefix))
            if found:
                self.fs.rm(found)
            if self._local and os.path.isdir(prefix):
                self.fs.rm(prefix, recursive=True)
        except OSError as error:
            raise JobError(f"cannot withdraw {self.uri(key)}/: {error}") from error
        return [f"{key}/{path[len(prefix) :]}" for path in found]


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def open_uri(uri: str) -> bytes:
    """Read a whole input given by URI (``s3://``, ``file://``, ``https://`` or a plain path).

    :raises BadInputError: naming the URI when it does not exist or names no known file system;
        retrying cannot make it appear.
    :raises JobError: when it exists but cannot be read (a network or permission failure may pass).
    """
    try:
        with fsspec.open(uri, "rb") as handle:
            return bytes(handle.read())
    except FileNotFoundError as error:
        raise BadInputError(f"{uri} does not exist") from error
    except (ValueError, ImportError) as error:
        raise BadInputError(f"{uri} cannot be opened: {error}") from error
    except OSError as error:
        raise JobError(f"{uri} cannot be read: {error}") from error
