"""Where the plugin's views live, for the extra links and notifications that lead to them.

Cheap to import (no FastAPI, no AWS): the operator, the sensor and the notifier build these URLs.
The views are served by Airflow's own API server under :data:`URL_PREFIX`; when Airflow runs under a
sub-path (``[api] base_url``), the URLs start with that path.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

#: Where Airflow mounts the plugin's FastAPI app.
URL_PREFIX = "/batch-fanout"


def _base() -> str:
    """``[api] base_url`` as the UI sees it: a full URL (for messages sent outside Airflow) or ``""``."""
    try:
        from airflow.configuration import conf

        return (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # configuration unreadable: links stay relative to the UI's own origin
        return ""


def _prefix(absolute: bool) -> str:
    base = _base()
    if absolute:
        # Airflow's own default for the links it sends (a task's log URL) when base_url is unset.
        return (base or "http://localhost:8080") + URL_PREFIX
    return urlsplit(base).path.rstrip("/") + URL_PREFIX


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def array_view_url(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int | None = -1,
    *,
    child: str | None = None,
    absolute: bool = False,
) -> str:
    """The array view of one task instance, optionally opened on one child's log.

    :param child: a child job id (``<array job id>:<index>``) or plain job id whose log to open.
    :param absolute: start with ``[api] base_url`` (for Slack and e-mail), not only its path.
    """
    query: dict[str, str] = {}
    if map_index is not None and map_index >= 0:
        query["map_index"] = str(map_index)
    if child:
        query["child"] = child
    url = f"{_prefix(absolute)}/array/{_segment(dag_id)}/{_segment(run_id)}/{_segment(task_id)}"
    return f"{url}?{urlencode(query)}" if query else url


def report_view_url(dag_id: str, run_id: str, *, absolute: bool = False) -> str:
    """The report view of one DAG run."""
    return f"{_prefix(absolute)}/report/{_segment(dag_id)}/{_segment(run_id)}/"
