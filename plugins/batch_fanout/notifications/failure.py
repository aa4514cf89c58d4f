"""A notifier that records a failed task where the run's results live.

Each failure becomes ``<results>/<dag_id>/<run_id>/_failures/<task_id>.json`` (written atomically
through fsspec, so it works for ``s3://`` and ``file://`` stores alike) and one ERROR log line. A
person looking at the results of a run sees at once that it failed, where and why, without opening
Airflow; add the Amazon provider's ``SnsNotifier`` next to it to be paged as well.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.notifier import BaseNotifier

log = logging.getLogger(__name__)


class RunFailureNotifier(BaseNotifier):
    """Record a task failure in the run's results store and the log.

    :param results_uri: the results store (``s3://bucket/prefix`` or ``file:///path``); templated,
        usually ``{{ var.value.batch_fanout_results_uri }}``
    """

    template_fields: Sequence[str] = ("results_uri",)

    def __init__(self, *, results_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results_uri = results_uri

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        record = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": getattr(ti, "map_index", -1),
            "try_number": ti.try_number,
            "error": str(context.get("exception") or "unknown error"),
            "recorded_at": datetime.now(timezone.utc).isoformat(),
        }
        log.error("task %s of run %s of %s failed: %s", ti.task_id, ti.run_id, ti.dag_id, record["error"])
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        import fsspec

        folder = f"{self.results_uri.rstrip('/')}/{record['dag_id']}/{record['run_id']}/_failures"
        filesystem, path = fsspec.core.url_to_fs(folder)
        filesystem.makedirs(path, exist_ok=True)
        final = f"{path}/{record['task_id']}.json"
        temporary = f"{path}/.{record['task_id']}.{uuid.uuid4().hex}.tmp"
        with filesystem.open(temporary, "w") as handle:
            json.dump(record, handle, indent=2)
        filesystem.mv(temporary, final)
