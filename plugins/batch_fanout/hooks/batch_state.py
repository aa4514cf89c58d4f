"""The value objects of a Batch job as one DescribeJobs call sees it, and the one fail-fast rule.

:class:`BatchJobState` (status, per-state child counts of an array from the parent's
``statusSummary``, progress line) and :class:`FailedChild` are built from DescribeJobs entries and
carried by the trigger's events; they make no AWS call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batch_fanout.submission import JobDescription

JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL_STATES = ("SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class BatchJobState:
    """The state of one Batch job as one DescribeJobs call sees it.

    For an array parent, ``counts`` holds the children per state from its ``statusSummary``.

    :param job_id: the job id.
    :param status: the job's status (``SUBMITTED`` ... ``SUCCEEDED`` / ``FAILED``).
    :param array_size: the number of children, or ``None`` for a plain job.
    :param counts: children per state (array jobs only).
    :param status_reason: the job's ``statusReason``, if any.
    :param job_name: the job's name.
    """

    job_id: str
    status: str
    array_size: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    status_reason: str = ""
    job_name: str = ""

    @classmethod
    def from_description(cls, description: JobDescription) -> BatchJobState:
        array = description.get("arrayProperties") or {}
        size = array.get("size")
        summary = array.get("statusSummary") or {}
        return cls(
            job_id=description["jobId"],
            status=description.get("status", "UNKNOWN"),
            array_size=int(size) if size else None,
            counts={state: int(summary.get(state, 0)) for state in JOB_STATES} if size else {},
            status_reason=description.get("statusReason", "") or "",
            job_name=description.get("jobName", "") or "",
        )

    @property
    def is_array(self) -> bool:
        return self.array_size is not None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    @property
    def is_successful(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def failed(self) -> int:
        """Failed children of an array; 1 or 0 for a plain job."""
        if self.is_array:
            return self.counts.get("FAILED", 0)
        return 1 if self.status == "FAILED" else 0

    @property
    def succeeded(self) -> int:
        if self.is_array:
            return self.counts.get("SUCCEEDED", 0)
        return 1 if self.status == "SUCCEEDED" else 0

    @property
    def total(self) -> int:
        return self.array_size if self.array_size is not None else 1

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def progress_line(self) -> str:
        """One human-readable progress line: counts per state and done / total."""
        if not self.is_array:
            return f"Batch job {self.job_id} ({self.job_name}): {self.status}"
        states = ", ".join(f"{state} {self.counts.get(state, 0)}" for state in JOB_STATES)
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"Batch array job {self.job_id} ({self.job_name}): {self.status}; {self.done}/{self.total} "
            f"done ({percent:.0f}%); {states}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "array_size": self.array_size,
            "counts": dict(self.counts),
            "status_reason": self.status_reason,
            "job_name": self.job_name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchJobState:
        return cls(
            job_id=data["job_id"],
            status=data["status"],
            array_size=data.get("array_size"),
            counts=dict(data.get("counts") or {}),
            status_reason=data.get("status_reason", ""),
            job_name=data.get("job_name", ""),
        )


def fail_fast_reason(state: BatchJobState, *, fail_fast: bool, tolerated_failures: int) -> str | None:
    """The one fail-fast rule (operator, sensor and trigger): with ``fail_fast``, more failed children
    than tolerated stop the job; returns the reason to terminate it with, else ``None``."""
    if fail_fast and state.failed > tolerated_failures:
        return f"fail-fast: {state.failed} children failed, more than the {tolerated_failures} tolerated"
    return None


@dataclass(frozen=True)
class FailedChild:
    """One failed child of an array job (or a failed plain job, with ``array_index`` ``None``).

    :param job_id: the child's id (``<parent>:<index>``).
    :param array_index: its index in the array it belongs to.
    :param status_reason: why it failed, as Batch says.
    :param exit_code: the container's exit code of the last attempt, if it ran.
    :param log_group: the CloudWatch log group of its last attempt.
    :param log_stream: the CloudWatch log stream of its last attempt, if it ran.
    """

    job_id: str
    array_index: int | None
    status_reason: str
    exit_code: int | None
    log_group: str = "/aws/batch/job"
    log_stream: str | None = None

    @classmethod
    def from_description(cls, description: JobDescription) -> FailedChild:
        container = description.get("container") or {}
        attempts = description.get("attempts") or []
        exit_code = container.get("exitCode")
        log_stream = container.get("logStreamName")
        if attempts:
            last = attempts[-1].get("container") or {}
            exit_code = last.get("exitCode", exit_code)
            log_stream = last.get("logStreamName", log_stream)
        options = (container.get("logConfiguration") or {}).get("options") or {}
        index = (description.get("arrayProperties") or {}).get("index")
        return cls(
            job_id=description["jobId"],
            array_index=int(index) if index is not None else None,
            status_reason=description.get("statusReason", "") or "",
            exit_code=int(exit_code) if exit_code is not None else None,
            log_group=options.get("awslogs-group", "/aws/batch/job"),
            log_stream=log_stream,
        )
