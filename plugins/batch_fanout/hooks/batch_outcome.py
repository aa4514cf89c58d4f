"""What a finished Batch job means for the Airflow task: success, tolerated or failing children.

Shared by :class:`~batch_fanout.operators.batch.BatchFanoutOperator` and
:class:`~batch_fanout.sensors.batch.BatchFanoutSensor` so that both report failures the same way:
the failed children's logical indices, each one's ``statusReason`` and exit code, and the last lines
of their CloudWatch logs copied into the task log (bounded in count and length). When every failure
is an input error (exit code :data:`~batch_fanout.job_contract.EXIT_BAD_INPUT`), the outcome says so,
with the job's own last log line, and the task fails without Airflow retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, BatchJobState, FailedChild
from batch_fanout.job_contract import EXIT_BAD_INPUT
from batch_fanout.submission import JobDescription, index_map_of


class TaskLog(Protocol):
    """The part of a task's logger used here (Airflow's and the standard library's both fit)."""

    def info(self, event: str, *args: object) -> object: ...

    def warning(self, event: str, *args: object) -> object: ...


#: Failed children named one by one in the error message; the rest are counted.
MAX_FAILURES_LISTED = 50


@dataclass
class JobOutcome:
    """The verdict on a finished (or fail-fast terminated) job.

    :param job_id: the job.
    :param state: its state as last seen.
    :param succeeded: whether the task should succeed.
    :param message: the summary (the error message when ``succeeded`` is false).
    :param failed_logical_indices: logical indices of the failed children (all of them).
    :param failed_children: the failed children described (at most ``MAX_FAILURES_LISTED``).
    :param input_error: every failure exited with the "bad input" code: retrying cannot help.
    """

    job_id: str
    state: BatchJobState
    succeeded: bool
    message: str
    failed_logical_indices: list[int] = field(default_factory=list)
    failed_children: list[FailedChild] = field(default_factory=list)
    input_error: bool = False


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
    description: JobDescription,
    *,
    tolerated_failures: int,
    log: TaskLog,
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

    tails = _copy_failed_logs(
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
    input_error = _all_input_errors(hook, job_id, children, more)
    if input_error:
        first = children[0]
        tail = tails.get(first.job_id)
        if tail is None and first.log_stream:
            tail = _read_tail(hook, first, 1)
        last_line = tail[-1] if tail else "no log line"
        label = _describe_failure(first, index_map).split(":", 1)[0]
        listing = (
            f"input error (exit code {EXIT_BAD_INPUT}, not retried) in {label}: {last_line.strip()}. "
            f"Failed: {listing}"
        )

    if fail_fast_reason is not None:
        message = (
            f"AWS Batch job {job_id} was terminated ({fail_fast_reason}). Failed so far: "
            f"{listing or 'none described yet'}"
        )
        return JobOutcome(job_id, state, False, message, failed_logical, children, input_error)

    if not state.is_array:
        reason = state.status_reason or "no statusReason"
        message = f"AWS Batch job {job_id} ended {state.status}: {listing or reason}"
        return JobOutcome(job_id, state, False, message, failed_logical, children, input_error)

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
    succeeded = failed_count <= tolerated_failures
    return JobOutcome(
        job_id, state, succeeded, summary, failed_logical, children, input_error and not succeeded
    )


def _all_input_errors(
    hook: BatchFanoutClientHook, job_id: str, children: list[FailedChild], more: int
) -> bool:
    """Whether every failure exited with the "bad input" code (all of them, not only those listed)."""
    if not children or any(child.exit_code != EXIT_BAD_INPUT for child in children):
        return False
    if more <= 0:
        return True
    return all(child.exit_code == EXIT_BAD_INPUT for child in hook.failed_children(job_id))


def _read_tail(hook: BatchFanoutClientHook, child: FailedChild, lines: int) -> list[str] | None:
    try:
        return hook.log_tail(child.log_group, child.log_stream or "", lines)
    except Exception:
        # Logs are a convenience: their absence must not hide the real failure.
        return None


def _copy_failed_logs(
    hook: BatchFanoutClientHook,
    children: list[FailedChild],
    index_map: list[int] | None,
    log: TaskLog,
    *,
    lines: int,
    line_length: int,
) -> dict[str, list[str]]:
    """Copy the failed children's log tails into ``log``; return the tails read, by child job id."""
    tails: dict[str, list[str]] = {}
    for child in children:
        label = _describe_failure(child, index_map).split(":", 1)[0]
        if not child.log_stream:
            log.info("No CloudWatch log stream for failed %s (it never ran)", label)
            continue
        tail = _read_tail(hook, child, lines)
        if tail is None:
            log.warning("Could not read the log of failed %s (%s)", label, child.log_stream)
            continue
        tails[child.job_id] = tail
        log.info(
            "Last %d log lines of failed %s (%s/%s):", len(tail), label, child.log_group, child.log_stream
        )
        for line in tail:
            text = line if len(line) <= line_length else line[:line_length] + " [...]"
            log.info("  | %s", text)
    return tails
