"""Connection arguments for Airflow's SQLite metadata database, as the project's Airflow home uses it.

`make airflow` runs the API server, scheduler, DAG processor and triggerer on one SQLite file. SQLite
lets one of them write at a time, and Python's driver gives up on a locked database after 5 s,
which a 2-core machine under load can exceed: the request then fails with "database is locked".
Airflow reads these through ``[database] sql_alchemy_connect_args`` (and ``..._async``), which the
Makefile sets in ``.airflow/airflow.cfg``. They are for SQLite only: other drivers name their
timeouts differently.
"""

from __future__ import annotations

# Seconds a connection waits for another process's write to finish before failing.
SQLITE_LOCK_TIMEOUT_SECONDS = 60.0

SQLITE_CONNECT_ARGS = {"timeout": SQLITE_LOCK_TIMEOUT_SECONDS}
