"""Request shapes of BatchFanoutClientHook, with botocore's Stubber, and its backoff ceilings.

These are the AWS-only parts (exact request shapes, answers no local endpoint gives); throttling,
retries and the failed-children lookup are tested against the local endpoint's faults in
``test_batch_client_throttling.py``, and behaviour against a running endpoint with the operators.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from batch_fanout.hooks.batch_client import (
    DESCRIBE_JOBS_MAX_IDS,
    BatchFanoutClientHook,
)


def job(job_id: str, status: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "jobName": "fanout",
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/d:1",
        "status": status,
        "startedAt": 1,
        **extra,
    }


@pytest.fixture
def hook() -> BatchFanoutClientHook:
    built = BatchFanoutClientHook(aws_conn_id=None, region_name="us-east-1", backoff_base=0.5, backoff_cap=4)
    built.pauses = []  # type: ignore[attr-defined]
    built.sleep = built.pauses.append  # type: ignore[attr-defined]
    return built


@pytest.fixture
def stubber(hook: BatchFanoutClientHook) -> Iterator[Stubber]:
    with Stubber(hook.batch) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_describe_jobs_asks_for_at_most_100_ids_a_call(hook: BatchFanoutClientHook, stubber: Stubber) -> None:
    ids = [f"job-{number:03d}" for number in range(250)]
    for start in range(0, 250, DESCRIBE_JOBS_MAX_IDS):
        chunk = ids[start : start + DESCRIBE_JOBS_MAX_IDS]
        stubber.add_response("describe_jobs", {"jobs": [job(i) for i in chunk]}, {"jobs": chunk})

    described = hook.describe_jobs(ids + ids[:10])  # duplicates are asked for once

    assert [d["jobId"] for d in described] == ids


def test_backoff_ceilings_double_up_to_the_cap(hook: BatchFanoutClientHook) -> None:
    samples = {retry: [hook.backoff_delay(retry) for _ in range(400)] for retry in (1, 2, 3, 4, 6)}
    assert max(samples[1]) <= 0.5 and max(samples[2]) <= 1.0 and max(samples[3]) <= 2.0
    assert max(samples[6]) <= 4.0  # capped
    # The ceiling grows: later retries wait longer on average (400 samples make this certain enough).
    assert sum(samples[4]) / 400 > sum(samples[1]) / 400
    assert len(set(samples[3])) > 300  # jittered, not a fixed pause


def test_array_progress_comes_from_one_describe_call(hook: BatchFanoutClientHook, stubber: Stubber) -> None:
    summary = {"SUCCEEDED": 6000, "FAILED": 2, "RUNNING": 1998, "RUNNABLE": 2000}
    stubber.add_response(
        "describe_jobs",
        {"jobs": [job("arr", "PENDING", arrayProperties={"size": 10000, "statusSummary": summary})]},
        {"jobs": ["arr"]},
    )

    state = hook.job_state("arr")

    assert (state.total, state.done, state.failed, state.succeeded) == (10000, 6002, 2, 6000)
    line = state.progress_line()
    assert "6002/10000 done" in line
    assert "FAILED 2" in line and "RUNNABLE 2000" in line and "STARTING 0" in line


def test_find_jobs_by_tags_filters_by_name_and_matches_tags(
    hook: BatchFanoutClientHook, stubber: Stubber
) -> None:
    tags = {"batch-fanout:dag-id": "d", "batch-fanout:task-id": "t", "batch-fanout:run-id": "r"}
    stubber.add_response(
        "list_jobs",
        {"jobSummaryList": [{"jobId": "a", "jobName": "fan"}], "nextToken": "page2"},
        {"jobQueue": "q", "filters": [{"name": "JOB_NAME", "values": ["fan"]}]},
    )
    stubber.add_response(
        "list_jobs",
        {"jobSummaryList": [{"jobId": "b", "jobName": "fan"}, {"jobId": "c", "jobName": "fan"}]},
        {"jobQueue": "q", "filters": [{"name": "JOB_NAME", "values": ["fan"]}], "nextToken": "page2"},
    )
    stubber.add_response(
        "describe_jobs",
        {
            "jobs": [
                job("a", "FAILED", tags=tags, createdAt=100),
                job("b", "RUNNING", tags={**tags, "batch-fanout:run-id": "other"}, createdAt=300),
                job("c", "RUNNING", tags=tags, createdAt=200),
            ]
        },
        {"jobs": ["a", "b", "c"]},
    )

    found = hook.find_jobs_by_tags("q", "fan", tags)

    assert [d["jobId"] for d in found] == ["c", "a"]
