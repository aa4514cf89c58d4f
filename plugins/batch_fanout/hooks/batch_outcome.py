"""What a finished Batch job means for the Airflow task: success, tolerated or failing children.

Shared by :class:`~batch_fanout.operators.batch.BatchFanoutOperator` and
:class:`~batch_fanout.sensors.batch.BatchFanoutSensor` so that both report failures the same way:
the failed children's logical indices, each one's ``statusReason`` and exit code, and the last lines
of their CloudWatch logs copied into the task log (bounded in count and length).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, BatchJobState, FailedChild
from batch_fanout_job.index import INDEX_MAP_VARIABLE, parse_index_map

#: Failed children named one by one in the error message; the rest are counted.
MAX_FAILURES_LISTED = 50


def parse_tolerated_failures(value: Any) -> int:
    """``tolerated_failures`` as an int, from an int or a rendered string.

    :raises ValueError: naming the value when it is not a whole number of 0 or more.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"tolerated_failures must be a whole number, got {type(value).__name__} {value!r}")
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"tolerated_failures must be a whole number, got {value!r}")
    count = int(text)
    if count < 0:
        raise ValueError(f"tolerated_failures must be 0 or more, got {count}")
    return count


def index_map_of(description: dict[str, Any]) -> list[int] | None:
    """The logical indices a job works on, from its ``BATCH_FANOUT_INDEX_MAP`` (``None`` if unset)."""
    environment = (description.get("container") or {}).get("environment") or []
    for variable in environment:
        if variable.get("name") == INDEX_MAP_VARIABLE and variable.get("value"):
            return parse_index_map(variable["value"])
    return None


def logical_indices_of(description: dict[str, Any]) -> list[int] | None:
    """The logical indices a job covers: its index map, else ``0..size-1`` for an array, else ``None``."""
    mapped = index_map_of(description)
    if mapped is not None:
        return mapped
    size = (description.get("arrayProperties") or {}).get("size")
    return list(range(int(size))) if size else None


@dataclass
class JobOutcome:
    """The verdict on a finished (or fail-fast terminated) job.

    :param job_id: the job.
    :param state: its state as last seen.
    :param succeeded: whether the task should succeed.
    :param message: the summary (the error message when ``succeeded`` is false).
    :param failed_logical_indices: logical indices of the failed children (all of them).
    :param failed_children: the failed children described (at most ``MAX_FAILURES_LISTED``).
    """

    job_id: str
    state: BatchJobState
    succeeded: bool
    message: str
    failed_logical_indices: list[int] = field(default_factory=list)
    failed_children: list[FailedChild] = field(default_factory=list)


def _logical(index_map: list[int] | None, array_index: int | None) -> int:
    if index_map is not None:
        return index_map[array_index or 0] if (array_index or 0) < len(index_map) else (array_index or 0)
    return array_index or 0


def _describe_failure(child: FailedChild, index_map: list[int] | None) -> str:
    exit_code = "none (did not run to an exit)" if child.exit_code is None else str(child.exit_code)
    reason = child.status_reason or "no statusReason"
    if child.array_index is None:
        where = f"job {child.job_id}"
        if index_map is not None:
            where += f" (logical index {_logical(index_map, None)})"
    else:
        where = f"index {_logical(index_map, child.array_index)}"
        if index_map is not None:
            where += f" (child {child.array_index})"
    return f"{where}: exit code {exit_code}; {reason}"


def assess_finished_job(
    hook: BatchFanoutClientHook,
    description: dict[str, Any],
    *,
    tolerated_failures: int,
    log: logging.Logger | Any,
    failed_log_children: int = 5,
    failed_log_lines: int = 20,
    failed_log_line_length: int = 1000,
    fail_fast_reason: str | None = None,
) -> JobOutcome:
    """Judge a terminal job (or one stopped by fail-fast) and copy failed children's log tails to ``log``.

    :param hook: the hook to list children and read logs with.
    :param description: the job's DescribeJobs entry.
    :param tolerated_failures: failed children of an array that still let the task succeed.
    :param log: the task's logger.
    :param failed_log_children: copy the logs of at most this many failed children.
    :param failed_log_lines: copy at most this many last lines of each.
    :param failed_log_line_length: cut each copied line to this many characters.
    :param fail_fast_reason: set when the job was terminated by fail-fast; the task then fails.
    """
    state = BatchJobState.from_description(description)
    job_id = state.job_id
    if state.is_successful and fail_fast_reason is None:
        return JobOutcome(job_id, state, True, f"AWS Batch job {job_id} succeeded: {state.progress_line()}")

    index_map = index_map_of(description)
    failed_indices = hook.failed_child_indices(job_id) if state.is_array else []
    children = hook.failed_children(job_id, limit=MAX_FAILURES_LISTED, description=description)
    if state.is_array:
        failed_logical = sorted(_logical(index_map, index) for index in failed_indices)
    elif state.status == "FAILED":
        failed_logical = [_logical(index_map, None)] if index_map is not None else [0]
    else:
        failed_logical = []

    _copy_failed_logs(
        hook,
        children[:failed_log_children],
        index_map,
        log,
        lines=failed_log_lines,
        line_length=failed_log_line_length,
    )

    described = [_describe_failure(child, index_map) for child in children]
    more = len(failed_indices) - len(described) if state.is_array else 0
    listing = "; ".join(described) + (f"; and {more} more" if more > 0 else "")

    if fail_fast_reason is not None:
        message = (
            f"AWS Batch job {job_id} was terminated ({fail_fast_reason}). Failed so far: "
            f"{listing or 'none described yet'}"
        )
        return JobOutcome(job_id, state, False, message, failed_logical, children)

    if not state.is_array:
        reason = state.status_reason or "no statusReason"
        message = f"AWS Batch job {job_id} ended {state.status}: {listing or reason}"
        return JobOutcome(job_id, state, False, message, failed_logical, children)

    failed_count = len(failed_indices)
    if failed_count == 0:
        message = (
            f"AWS Batch array job {job_id} ended {state.status} with no failed child listed: "
            f"{state.status_reason or 'no statusReason'}"
        )
        return JobOutcome(job_id, state, False, message, failed_logical, children)
    summary = (
        f"AWS Batch array job {job_id}: {failed_count} of {state.total} children failed "
        f"(tolerated: {tolerated_failures}): {listing}"
    )
    return JobOutcome(job_id, state, failed_count <= tolerated_failures, summary, failed_logical, children)


def _copy_failed_logs(
    hook: BatchFanoutClientHook,
    children: list[FailedChild],
    index_map: list[int] | None,
    log: Any,
    *,
    lines: int,
    line_length: int,
) -> None:
    for child in children:
        label = _describe_failure(child, index_map).split(":", 1)[0]
        if not child.log_stream:
            log.info("No CloudWatch log stream for failed %s (it never ran)", label)
            continue
        try:
            tail = hook.log_tail(child.log_group, child.log_stream, lines)
        except Exception as error:
            # Logs are a convenience: their absence must not hide the real failure.
            log.warning("Could not read the log of failed %s (%s): %s", label, child.log_stream, error)
            continue
        log.info(
            "Last %d log lines of failed %s (%s/%s):", len(tail), label, child.log_group, child.log_stream
        )
        for line in tail:
            text = line if len(line) <= line_length else line[:line_length] + " [...]"
            log.info("  | %s", text)
