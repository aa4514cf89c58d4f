"""What the array view shows, read from AWS Batch through the task's connection.

A task's job (the latest try's) may be a retry of only the failed children of an earlier job, which
may itself be one: the operator tags each such job with ``batch-fanout:retry-of``, so the history is
followed back job by job. Each job's children are read with ListJobs by ``arrayJobId`` and
``jobStatus`` (up to 1,000 a page, only for the states its ``statusSummary`` counts), never with one
DescribeJobs per child: a refresh of a 10,000-child array costs one DescribeJobs call per job in the
history plus about ten ListJobs pages. Children are keyed by logical index (through each job's
``BATCH_FANOUT_INDEX_MAP``), so a retried index shows its latest run and its history.

A finished job's children never change again, so the API server keeps the children of the last few
finished jobs it listed (:class:`FinishedChildren`): a refresh of a finished array then costs only
the DescribeJobs calls. Listing is what costs time on a large array (botocore parses every summary).

One child's details (Batch attempts, exit codes, log stream) and its log are read on demand, when a
person opens it: one DescribeJobs call and one GetLogEvents call.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from batch_fanout.hooks.batch_client import JOB_STATES, TERMINAL_STATES
from batch_fanout.submission import logical_indices_of

#: The tag the operator puts on a job that retries (some children of) an earlier job.
RETRY_OF_TAG = "batch-fanout:retry-of"
#: How far back the history of retries is followed.
MAX_HISTORY = 20
#: ListJobs page size with ``jobStatus`` (AWS's maximum).
LIST_PAGE = 1000
#: Log events shown for one child (the last ones).
LOG_EVENTS = 500
#: States ordered by how far a job has gone, to settle a child listed twice while it moves on.
_STATE_ORDER = {state: position for position, state in enumerate(JOB_STATES)}


class CountingClient:
    """A boto3 client that counts the calls made through it, by operation name.

    :param client: the client (Batch or CloudWatch Logs).
    :param calls: the counter shared by the clients of one request.
    :param call: how calls are made: ``call(method, **kwargs)`` (the hook's throttling backoff).
    """

    def __init__(self, client: Any, calls: Counter[str], call: Any = None) -> None:
        self._client = client
        self._calls = calls
        self._call = call or (lambda method, **kwargs: method(**kwargs))

    def __call__(self, operation: str, **kwargs: Any) -> Any:
        self._calls[operation] += 1
        method = getattr(self._client, _snake(operation))
        return self._call(method, **kwargs)


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


@dataclass
class Child:
    """One run of one logical index, as ListJobs summarizes it."""

    job_id: str
    status: str
    exit_code: int | None = None
    reason: str = ""
    started_at: int | None = None
    stopped_at: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to stop (or to now while running)."""
        if self.started_at is None:
            return None
        end = self.stopped_at if self.stopped_at is not None else int(time.time() * 1000)
        return max(0.0, (end - self.started_at) / 1000.0)

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Child:
        container = summary.get("container") or {}
        exit_code = container.get("exitCode")
        return cls(
            job_id=summary["jobId"],
            status=summary.get("status", "UNKNOWN"),
            exit_code=int(exit_code) if exit_code is not None else None,
            reason=summary.get("statusReason") or container.get("reason") or "",
            started_at=summary.get("startedAt"),
            stopped_at=summary.get("stoppedAt"),
        )


@dataclass
class ArrayView:
    """The array view's data: the task's jobs and one entry per logical index."""

    jobs: list[dict[str, Any]]
    cells: dict[int, list[Child]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def latest(self) -> dict[str, Any]:
        return self.jobs[-1]

    @property
    def running(self) -> bool:
        """Whether a refresh can show something new (a job of the history is not finished)."""
        return any(job.get("status") not in TERMINAL_STATES for job in self.jobs)

    def counts(self) -> dict[str, int]:
        """Logical indices per state of their latest run."""
        counted = Counter(runs[-1].status for runs in self.cells.values())
        return {state: counted.get(state, 0) for state in JOB_STATES}

    def to_json(self) -> dict[str, Any]:
        """The compact form the page reads: a cell is ``[index, state, runs, exit code, reason,
        seconds, job id, [[job id, state, exit code], ...] for earlier runs]``."""
        cells = []
        for index in sorted(self.cells):
            runs = self.cells[index]
            last = runs[-1]
            duration = last.duration
            cells.append(
                [
                    index,
                    last.status,
                    len(runs),
                    last.exit_code,
                    last.reason,
                    None if duration is None else round(duration, 1),
                    last.job_id,
                    [[run.job_id, run.status, run.exit_code] for run in runs[:-1]],
                ]
            )
        latest = self.latest
        return {
            "job": {
                "job_id": latest["jobId"],
                "job_name": latest.get("jobName", ""),
                "status": latest.get("status", "UNKNOWN"),
                "status_reason": latest.get("statusReason", ""),
                "queue": latest.get("jobQueue", "").rsplit("/", 1)[-1],
                "array_size": (latest.get("arrayProperties") or {}).get("size"),
            },
            "jobs": [
                {
                    "job_id": job["jobId"],
                    "status": job.get("status", "UNKNOWN"),
                    "size": (job.get("arrayProperties") or {}).get("size") or 1,
                    "created_at": job.get("createdAt"),
                }
                for job in self.jobs
            ],
            "counts": self.counts(),
            "total": len(self.cells),
            "running": self.running,
            "cells": cells,
            "calls": dict(self.calls),
        }


def job_history(batch: CountingClient, job_id: str) -> list[dict[str, Any]]:
    """The job and the earlier jobs it retries (``batch-fanout:retry-of``), oldest first.

    :raises LookupError: naming the job when Batch does not know it.
    """
    history: list[dict[str, Any]] = []
    seen: set[str] = set()
    next_id: str | None = job_id
    while next_id and next_id not in seen and len(history) < MAX_HISTORY:
        seen.add(next_id)
        jobs = batch("DescribeJobs", jobs=[next_id]).get("jobs") or []
        if not jobs:
            if not history:
                raise LookupError(f"AWS Batch does not know job {next_id}")
            break  # an earlier job aged out of Batch's history (AWS keeps jobs for about 7 days)
        history.append(jobs[0])
        next_id = (jobs[0].get("tags") or {}).get(RETRY_OF_TAG)
    history.reverse()
    return history


def list_children(batch: CountingClient, job: dict[str, Any]) -> list[Child]:
    """Every child of an array job, by ListJobs per state with children (``statusSummary``)."""
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    # A state the summary does not count yet may still hold children that moved on since it was
    # read; terminal states are listed whatever the summary says, so a finished child is never lost.
    states = [state for state in JOB_STATES if summary.get(state) or state in TERMINAL_STATES]
    found: dict[str, Child] = {}
    for state in states:
        token: str | None = None
        while True:
            request: dict[str, Any] = {
                "arrayJobId": job["jobId"],
                "jobStatus": state,
                "maxResults": LIST_PAGE,
            }
            if token:
                request["nextToken"] = token
            response = batch("ListJobs", **request)
            for entry in response.get("jobSummaryList") or []:
                child = Child.from_summary(entry)
                known = found.get(child.job_id)
                # Listed twice while it moved between states: keep the further one.
                if known is None or _STATE_ORDER.get(child.status, -1) >= _STATE_ORDER.get(known.status, -1):
                    found[child.job_id] = child
            token = response.get("nextToken")
            if not token:
                break
    return list(found.values())


class FinishedChildren:
    """The children of the last ``size`` finished array jobs listed, by (connection, job id).

    :param size: how many jobs to keep (a 10,000-child job takes a few MB).
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._jobs: OrderedDict[tuple[str, str], list[Child]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> list[Child] | None:
        with self._lock:
            children = self._jobs.get(key)
            if children is not None:
                self._jobs.move_to_end(key)
            return children

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()

    def put(self, key: tuple[str, str], children: list[Child]) -> None:
        with self._lock:
            self._jobs[key] = children
            self._jobs.move_to_end(key)
            while len(self._jobs) > self.size:
                self._jobs.popitem(last=False)


def _array_index(child_id: str) -> int | None:
    _, _, index = child_id.rpartition(":")
    return int(index) if index.isdigit() else None


def read_array_view(
    batch: CountingClient,
    job_id: str,
    calls: Counter[str],
    finished: FinishedChildren | None = None,
    scope: str = "",
) -> ArrayView:
    """Read the task's job, its history and every child.

    :param batch: the Batch client (counted).
    :param job_id: the job of the task's latest try.
    :param calls: the counter ``batch`` counts into (reported with the view).
    :param finished: where the children of finished jobs are kept between refreshes.
    :param scope: what distinguishes job ids of different accounts in ``finished`` (the connection).
    """
    history = job_history(batch, job_id)
    view = ArrayView(jobs=history, calls=calls)
    for job in history:
        covered = logical_indices_of(job)
        if (job.get("arrayProperties") or {}).get("size"):
            listed: set[int] = set()
            key = (scope, job["jobId"])
            children = finished.get(key) if finished is not None else None
            if children is None:
                children = list_children(batch, job)
                if finished is not None and job.get("status") in TERMINAL_STATES:
                    finished.put(key, children)
            for child in children:
                position = _array_index(child.job_id)
                if position is None:
                    continue
                listed.add(position)
                logical = covered[position] if covered and position < len(covered) else position
                view.cells.setdefault(logical, []).append(child)
            # A child not listed (an array Batch has not expanded yet) shows its parent's state.
            for position, logical in enumerate(covered or []):
                if position not in listed:
                    placeholder = Child(job_id=f"{job['jobId']}:{position}", status=job.get("status", ""))
                    view.cells.setdefault(logical, []).append(placeholder)
        else:
            plain = Child.from_summary(job)
            if job.get("attempts"):
                last = job["attempts"][-1].get("container") or {}
                if last.get("exitCode") is not None:
                    plain.exit_code = int(last["exitCode"])
            view.cells.setdefault((covered or [0])[0], []).append(plain)
    return view


def job_ids_of(view_jobs: list[dict[str, Any]]) -> set[str]:
    return {job["jobId"] for job in view_jobs}


def child_belongs(child_id: str, job_ids: set[str]) -> bool:
    """Whether ``child_id`` is one of these jobs or one of their children (and nothing else)."""
    if child_id in job_ids:
        return True
    parent, _, index = child_id.rpartition(":")
    return index.isdigit() and parent in job_ids


def child_details(batch: CountingClient, logs: CountingClient, child_id: str) -> dict[str, Any]:
    """One child's attempts and the log of its last attempt (one DescribeJobs, one GetLogEvents).

    :raises LookupError: naming the child when Batch does not know it.
    """
    jobs = batch("DescribeJobs", jobs=[child_id]).get("jobs") or []
    if not jobs:
        raise LookupError(f"AWS Batch does not know job {child_id}")
    job = jobs[0]
    container = job.get("container") or {}
    options = (container.get("logConfiguration") or {}).get("options") or {}
    log_group = options.get("awslogs-group", "/aws/batch/job")
    attempts = []
    for attempt in job.get("attempts") or []:
        detail = attempt.get("container") or {}
        attempts.append(
            {
                "exit_code": detail.get("exitCode"),
                "reason": attempt.get("statusReason") or detail.get("reason") or "",
                "log_stream": detail.get("logStreamName"),
                "started_at": attempt.get("startedAt"),
                "stopped_at": attempt.get("stoppedAt"),
            }
        )
    log_stream = container.get("logStreamName") or (attempts[-1]["log_stream"] if attempts else None)
    lines: list[str] = []
    log_error = ""
    if log_stream:
        try:
            response = logs(
                "GetLogEvents",
                logGroupName=log_group,
                logStreamName=log_stream,
                limit=LOG_EVENTS,
                startFromHead=False,
            )
            lines = [event.get("message", "") for event in response.get("events") or []]
        except Exception as error:  # shown on the page: a missing stream is not the view's failure
            log_error = f"{type(error).__name__}: {error}"
    return {
        "job_id": job["jobId"],
        "status": job.get("status", "UNKNOWN"),
        "status_reason": job.get("statusReason", ""),
        "attempts": attempts,
        "log_group": log_group,
        "log_stream": log_stream,
        "log": lines,
        "log_error": log_error,
    }
