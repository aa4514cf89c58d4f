"""What the operators' DAG tests share: the probe's definition and queue, a one-task array DAG, and
readers of what the run left behind."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from batch_fanout.operators.batch import BatchFanoutOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
QUEUE = "batch-fanout-queue"
# The probe's definition and queue on the probe endpoint, polled often so that a test's run is short.
FAST: dict[str, Any] = {"poll_interval": 0.2, "job_definition": "fanout-probe", "job_queue": QUEUE}
NO_DELAY_RETRY: dict[str, Any] = {"retries": 1, "retry_delay": datetime.timedelta(0)}


def array_dag(
    dag_id: str,
    *,
    array_size: int | str,
    container_overrides: dict[str, Any],
    job_name: str | None = None,
    **operator: Any,
) -> DAG:
    """A DAG of one task (``arr`` unless ``operator`` names another ``task_id``): a BatchFanoutOperator of
    ``array_size`` children of the probe with the ``FAST`` arguments, which ``operator`` adds to or
    replaces; ``job_name`` defaults to the task id, as the operator's does."""
    with DAG(dag_id, schedule=None, start_date=START) as dag:
        BatchFanoutOperator(
            **{
                "task_id": "arr",
                "job_name": job_name,
                "array_size": array_size,
                "container_overrides": container_overrides,
                **FAST,
                **operator,
            }
        )
    return dag


def env_of(description: dict[str, Any]) -> dict[str, str]:
    """A described job's container environment, by name."""
    return {e["name"]: e["value"] for e in description.get("container", {}).get("environment", [])}


def count_describe_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record every DescribeJobs request this process makes from now on, through botocore's event hooks.

    A function to call in the test, not a fixture: clients the fixtures made before it are not counted.
    """
    import botocore.session

    calls: list[list[str]] = []
    original = botocore.session.Session.create_client

    def counting_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register(
            "provide-client-params.batch.DescribeJobs", lambda params, **_: calls.append(list(params["jobs"]))
        )
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", counting_client)
    return calls
