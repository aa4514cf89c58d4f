"""The failure notifier posts to Slack through apache-airflow-providers-slack: a webhook receiver on
127.0.0.1 gets the Batch job's name, status, id, queue, log stream, failed indices and the array view."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class Receiver(BaseHTTPRequestHandler):
    posts: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        type(self).posts.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what was posted."""


@pytest.fixture
def slack_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A Slack incoming-webhook stand-in on 127.0.0.1 and the connection ``test_slack`` to it."""
    Receiver.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX"
    monkeypatch.setenv("AIRFLOW_CONN_TEST_SLACK", json.dumps({"conn_type": "slackwebhook", "password": url}))
    try:
        yield Receiver.posts
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_failed_array_task_posts_its_job_and_failed_indices_to_slack(
    *, run_dag: Any, ui_connection: str, slack_webhook: list[dict[str, Any]], tmp_path: Path
) -> None:
    from airflow.sdk import DAG

    from batch_fanout.notifications.failure import RunFailureNotifier
    from batch_fanout.operators.batch import BatchFanoutOperator

    results = tmp_path / "results"
    results.mkdir()
    with DAG("bf_ui_slack", schedule=None, start_date=START) as dag:
        BatchFanoutOperator(
            task_id="arr",
            job_name="slack-arr",
            job_definition="fanout-probe-ui",
            job_queue="batch-fanout-queue",
            array_size=3,
            aws_conn_id=ui_connection,
            poll_interval=0.2,
            retries=0,
            container_overrides={
                "command": ["python", "probe.py", "--record-dir", str(tmp_path / "r"), "--fail-indices", "2"]
            },
            on_failure_callback=[
                RunFailureNotifier(results_uri=results.as_uri(), slack_webhook_conn_id="test_slack")
            ],
        )
    dag_run = run_dag(dag)
    assert dag_run.state == "failed"

    assert len(slack_webhook) == 1
    post = slack_webhook[0]
    assert post["path"] == "/services/T000/B000/XXXX"
    text = post["body"]["text"]
    assert "task *arr* failed" in text and dag_run.run_id in text
    assert "Batch job *slack-arr* is FAILED" in text and "queue `batch-fanout-queue`" in text
    assert "Failed logical indices: 2" in text
    assert "Log stream: `/aws/batch/job` / `" in text
    assert "/batch-fanout/array/bf_ui_slack/" in text and "/arr" in text
    assert "id `" in text
    # The failure record is still written beside the run's results.
    assert (results / "bf_ui_slack" / dag_run.run_id / "_failures" / "arr.json").is_file()
