"""The Airflow plugin object: the FastAPI app and the two tabs that show its pages in the UI.

Airflow's UI puts an external view whose ``destination`` is ``task_instance`` (``dag_run``) as a tab
on every task instance (DAG run) page, in a frame, with ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and
``{MAP_INDEX}`` filled in. A task without a Batch job says so in its tab.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from batch_fanout.ui.lazy import LazyASGIApp
from batch_fanout.ui.paths import URL_PREFIX


def _create_app() -> object:
    from batch_fanout.ui.app import create_app

    return create_app()


class BatchFanoutPlugin(AirflowPlugin):
    """The array view and the report view of batch-fanout."""

    name = "batch_fanout"
    # Built on the API server's first request to it, not wherever Airflow loads plugins
    # (batch_fanout.ui.lazy says why).
    fastapi_apps = [{"app": LazyASGIApp(_create_app), "url_prefix": URL_PREFIX, "name": "batch-fanout views"}]
    external_views = [
        {
            "name": "Batch array",
            "href": URL_PREFIX + "/array/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "batch-fanout-array",
        },
        {
            "name": "Run report",
            "href": URL_PREFIX + "/report/{DAG_ID}/{RUN_ID}/",
            "destination": "dag_run",
            "url_route": "batch-fanout-report",
        },
    ]
