"""CancelJobs, TerminateJobs and GetJobQueueSnapshot; every other operation is refused by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.batch_api import BatchApi
from batch_fanout.local.engine import Engine
from batch_fanout.local.protocol import service_model

from .conftest import create_queue

Submit = Callable[..., str]
WaitStatus = Callable[..., dict[str, Any]]
DOCS = Path(__file__).resolve().parents[4] / "docs" / "local-endpoint.md"


def test_snapshot_lists_the_front_of_the_queue_and_bulk_calls_stop_jobs(
    batch: Any, submit: Submit, wait_status: WaitStatus, tmp_path: Path
) -> None:
    queue = create_queue(batch, "snapshot", 1)
    gate = submit("spin", name="gate", jobQueue=queue)
    wait_status(gate, ("RUNNING",))
    waiting = [submit("print:never", name=f"waiting{index}", jobQueue=queue) for index in range(3)]
    for job_id in waiting:
        wait_status(job_id, ("RUNNABLE",))

    snapshot = batch.get_job_queue_snapshot(jobQueue=queue)
    front = snapshot["frontOfQueue"]["jobs"]
    assert [item["jobArn"].rsplit("/", 1)[-1] for item in front] == waiting
    created = {job["jobId"]: job["createdAt"] for job in batch.describe_jobs(jobs=waiting)["jobs"]}
    assert all(item["earliestTimeAtPosition"] >= created[item["jobArn"].rsplit("/", 1)[-1]] for item in front)
    assert snapshot["queueUtilization"]["totalCapacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 1.0}]

    cancelled = batch.cancel_jobs(jobs=[waiting[0], "no-such-job"], reason="bulk cancel")
    assert cancelled["successful"] == [waiting[0], "no-such-job"]
    assert cancelled["errors"] == []
    assert wait_status(waiting[0])["statusReason"] == "bulk cancel"
    batch.terminate_jobs(jobs=[gate, *waiting[1:]], reason="bulk terminate")
    for job_id in (gate, *waiting[1:]):
        job = wait_status(job_id)
        assert job["status"] == "FAILED"
        assert job["statusReason"] == "bulk terminate"
        assert job["isTerminated"] is True
    assert batch.get_job_queue_snapshot(jobQueue=queue)["frontOfQueue"]["jobs"] == []
    with pytest.raises(ClientError, match="at most 50 job ids"):
        batch.terminate_jobs(jobs=[f"job-{index}" for index in range(51)], reason="too many")


def _handled(data_dir: Path) -> set[str]:
    """The operations the endpoint's handler table answers (an engine that is never started)."""
    engine = Engine(data_dir, None)
    try:
        return set(BatchApi(engine).handlers)
    finally:
        engine.stop()


def _documented(heading: str) -> list[str]:
    section = DOCS.read_text().split("## Operations", 1)[1]
    names = re.findall(r"`([A-Za-z]+)`", section.split(heading, 1)[1].split("\n\n", 1)[0])
    return sorted(name for name in names if not name.endswith("Exception"))


def test_every_other_operation_of_the_model_is_refused_by_name_and_listed_in_the_docs(
    batch: Any, tmp_path: Path
) -> None:
    handled = _handled(tmp_path / "data")
    unsupported = sorted(set(service_model("batch").operation_names) - handled)
    assert _documented("Batch:") == sorted(handled)
    assert _documented("Not supported") == unsupported
    for call in (batch.describe_service_environments, batch.list_service_jobs):
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == "ClientException"
        assert "is not supported by the local endpoint" in raised.value.response["Error"]["Message"]
    assert "ListServiceJobs" in unsupported
