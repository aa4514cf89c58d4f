"""A notifier that records a failed task where the run's results live, and can post it to Slack.

Each failure becomes ``<results>/<dag_id>/<run_id>/_failures/<task_id>.json`` (written atomically
through fsspec, so it works for ``s3://`` and ``file://`` stores alike) and one ERROR log line. A
person looking at the results of a run sees at once that it failed, where and why, without opening
Airflow.

With ``slack_webhook_conn_id`` (a Slack incoming-webhook connection of
``apache-airflow-providers-slack``), the failure is also posted to Slack: for a batch-fanout task,
the Batch job's name, status, id, queue and log stream, the failed logical indices and a link to the
task's array view; for any other task, the task, the run and the error. A Slack error is logged and
never hides the task's own failure.
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
    """Record a task failure in the run's results store and the log, and optionally post it to Slack.

    :param results_uri: the results store (``s3://bucket/prefix`` or ``file:///path``); templated,
        usually ``{{ var.value.batch_fanout_results_uri }}``
    :param slack_webhook_conn_id: a Slack incoming-webhook connection to post the failure to;
        templated; empty or ``None`` (the default) posts nothing.
    """

    template_fields: Sequence[str] = ("results_uri", "slack_webhook_conn_id")

    def __init__(self, *, results_uri: str, slack_webhook_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results_uri = results_uri
        self.slack_webhook_conn_id = slack_webhook_conn_id

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
        conn_id = (self.slack_webhook_conn_id or "").strip()
        if conn_id:
            try:
                self._post_to_slack(conn_id, context, record)
            except Exception:
                log.exception(
                    "could not post the failure of %s to Slack (connection %s)", ti.task_id, conn_id
                )

    def _post_to_slack(self, conn_id: str, context: Any, record: dict[str, Any]) -> None:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        text = slack_message(context, record)
        SlackWebhookHook(slack_webhook_conn_id=conn_id).send(text=text)
        log.info("failure of %s posted to Slack through connection %s", record["task_id"], conn_id)

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


def _xcom(ti: Any, key: str) -> Any:
    try:
        return ti.xcom_pull(task_ids=ti.task_id, key=key, map_indexes=getattr(ti, "map_index", -1))
    except Exception:  # no XCom backend reachable: the message says less, and is still sent
        return None


def batch_job_facts(context: Any) -> dict[str, Any]:
    """What the failed task knew of its Batch job: id, name, status, queue, log stream, failed
    logical indices (empty for a task that is not a batch-fanout task)."""
    ti = context["ti"]
    task = context.get("task")
    job = _xcom(ti, "batch_fanout_job")
    job_id = job.get("job_id") if isinstance(job, dict) else None
    if not job_id:
        return {}
    facts: dict[str, Any] = {
        "job_id": job_id,
        "job_name": getattr(task, "job_name", None),
        "queue": getattr(task, "job_queue", None),
        "status": None,
        "status_reason": None,
    }
    hook = getattr(task, "hook", None)
    if hook is not None and hasattr(hook, "get_job_description"):
        try:
            description = hook.get_job_description(job_id)
            facts.update(
                job_name=description.get("jobName") or facts["job_name"],
                status=description.get("status"),
                status_reason=description.get("statusReason"),
                queue=str(description.get("jobQueue") or facts["queue"] or "").rsplit("/", 1)[-1] or None,
            )
        except Exception:
            log.warning("could not describe Batch job %s for the failure message", job_id)
    logs = _xcom(ti, "batch_fanout_logs")
    if isinstance(logs, dict):
        facts["log_group"] = logs.get("log_group")
        facts["log_stream"] = logs.get("log_stream")
    failed = _xcom(ti, "failed_indices")
    facts["failed_indices"] = list(failed) if isinstance(failed, (list, tuple)) else []
    return facts


def slack_message(context: Any, record: dict[str, Any]) -> str:
    """The Slack text (mrkdwn) of a failure: the Batch job's facts when there is one, the error, and
    a link to the task's array view."""
    from batch_fanout.ui.paths import array_view_url

    ti = context["ti"]
    facts = batch_job_facts(context)
    lines = [
        f":red_circle: *{ti.dag_id}* run `{ti.run_id}`: task *{ti.task_id}* failed (try {ti.try_number})"
    ]
    if facts:
        lines.append(
            f"Batch job *{facts.get('job_name') or '?'}* is {facts.get('status') or 'unknown'}: "
            f"id `{facts['job_id']}`, queue `{facts.get('queue') or '?'}`"
        )
        if facts.get("status_reason"):
            lines.append(f"Reason: {facts['status_reason']}")
        if facts.get("log_stream"):
            lines.append(f"Log stream: `{facts.get('log_group')}` / `{facts['log_stream']}`")
        if facts.get("failed_indices"):
            shown = ", ".join(str(index) for index in facts["failed_indices"][:50])
            more = len(facts["failed_indices"]) - 50
            lines.append(f"Failed logical indices: {shown}{f' and {more} more' if more > 0 else ''}")
        url = array_view_url(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), absolute=True)
        lines.append(f"Array view: <{url}|every child, its attempts and logs>")
    lines.append(f"Error: {record['error'][:1500]}")
    return "\n".join(lines)
