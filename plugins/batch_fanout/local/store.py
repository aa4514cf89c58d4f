"""Durable state of the endpoint: one SQLite database (standard library, WAL) in the data directory.

Jobs and resources are stored as JSON documents keyed by id. The engine keeps the live state in
memory and writes the documents that changed in one transaction per scheduling round, so that a
1,000-child array costs a handful of commits rather than thousands.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"""


class Store:
    """The SQLite database of one data directory.

    Not thread-safe by itself: the engine serialises every call under its lock.

    :param path: the database file
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of the process (what kill -9 does); only a power loss
        # could roll back the last transactions.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(SCHEMA)

    def close(self) -> None:
        self._connection.close()

    def save_jobs(self, rows: Iterable[tuple[str, int, dict[str, Any]]]) -> None:
        """Insert or replace jobs, given as ``(job_id, seq, document)``, in one transaction."""
        encoded = [(job_id, seq, json.dumps(doc, separators=(",", ":"))) for job_id, seq, doc in rows]
        if not encoded:
            return
        with self._transaction():
            self._connection.executemany(
                "INSERT OR REPLACE INTO jobs (job_id, seq, document) VALUES (?, ?, ?)", encoded
            )

    def load_jobs(self) -> Iterator[dict[str, Any]]:
        """Every job document, in submission order."""
        for (document,) in self._connection.execute("SELECT document FROM jobs ORDER BY seq"):
            yield json.loads(document)

    def save_resource(self, kind: str, key: str, document: dict[str, Any]) -> None:
        with self._transaction():
            self._connection.execute(
                "INSERT OR REPLACE INTO resources (kind, key, document) VALUES (?, ?, ?)",
                (kind, key, json.dumps(document, separators=(",", ":"))),
            )

    def delete_resource(self, kind: str, key: str) -> None:
        with self._transaction():
            self._connection.execute("DELETE FROM resources WHERE kind = ? AND key = ?", (kind, key))

    def load_resources(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(document)
            for (document,) in self._connection.execute(
                "SELECT document FROM resources WHERE kind = ? ORDER BY rowid", (kind,)
            )
        ]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._connection)


class _Transaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        self._connection.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._connection.execute("COMMIT" if exc_type is None else "ROLLBACK")
