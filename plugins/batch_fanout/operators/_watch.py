"""What the operator and the sensor share once they watch a job: the trigger, fail-fast, the finish.

Both tasks turn a finished job into the task's result the same way (:func:`finish_job`): judge it
(:func:`~batch_fanout.hooks.batch_outcome.assess_finished_job`), store the links and the XCom values,
then return the job id or raise. An input error (every failure exited with the "bad input" code)
fails the task without Airflow retries; other failures fail it with or without retries as the task
says (the sensor never retries: watching the same finished job again changes nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from batch_fanout.hooks.batch_client import BatchFanoutClientHook
from batch_fanout.hooks.batch_outcome import TaskLog, assess_finished_job
from batch_fanout.job_contract import format_index_map
from batch_fanout.links.batch import persist_job_links
from batch_fanout.submission import JobDescription, index_map_of
from batch_fanout.triggers.batch import BatchFanoutTrigger

if TYPE_CHECKING:
    from airflow.models import BaseOperator
    from airflow.sdk import Context


class WatchingTask(Protocol):
    """What :func:`finish_job` reads from the operator or sensor (attributes both have)."""

    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, object] | None
    tolerated_failures: int
    fail_fast: bool
    failed_log_children: int
    failed_log_lines: int
    failed_log_line_length: int
    do_xcom_push: bool

    @property
    def log(self) -> TaskLog: ...


def trigger_for(
    task: WatchingTask, job_id: str, *, poll_interval: float, terminate_on_kill: bool
) -> BatchFanoutTrigger:
    """The trigger that watches ``job_id`` with the task's connection and failure settings."""
    return BatchFanoutTrigger(
        job_id=job_id,
        aws_conn_id=task.aws_conn_id,
        region_name=task.region_name,
        verify=task.verify,
        botocore_config=task.botocore_config,
        poll_interval=poll_interval,
        tolerated_failures=task.tolerated_failures,
        fail_fast=task.fail_fast,
        terminate_on_kill=terminate_on_kill,
    )


def finish_job(
    task: WatchingTask,
    context: Context,
    hook: BatchFanoutClientHook,
    description: JobDescription,
    *,
    fail_fast: str | None = None,
    retry_on_failure: bool,
) -> str:
    """Turn a terminal job (or one stopped by fail-fast) into the task's result.

    :param task: the operator or sensor.
    :param context: the task's context.
    :param hook: the task's hook.
    :param description: the job's DescribeJobs entry.
    :param fail_fast: the fail-fast reason when the task stopped the job.
    :param retry_on_failure: whether a failure may be retried by Airflow (never for input errors).
    :return: the job id.
    :raises AirflowException: the job failed beyond the tolerated failures (retryable).
    :raises AirflowFailException: the same, not to be retried.
    """
    outcome = assess_finished_job(
        hook,
        description,
        tolerated_failures=task.tolerated_failures,
        log=task.log,
        failed_log_children=task.failed_log_children,
        failed_log_lines=task.failed_log_lines,
        failed_log_line_length=task.failed_log_line_length,
        fail_fast_reason=fail_fast,
    )
    first = outcome.failed_children[0] if outcome.failed_children else None
    persist_job_links(
        context,
        _as_operator(task),
        region_name=hook.conn_region_name,
        aws_partition=hook.conn_partition,
        job_id=outcome.job_id,
        description=dict(description),
        first_failed_child=(
            {"job_id": first.job_id, "log_group": first.log_group, "log_stream": first.log_stream}
            if first
            else None
        ),
    )
    if task.do_xcom_push:
        mapped = index_map_of(description)
        context["ti"].xcom_push(key="index_map", value=format_index_map(mapped) if mapped else None)
        context["ti"].xcom_push(key="failed_indices", value=outcome.failed_logical_indices)
    if not outcome.succeeded:
        if outcome.input_error or not retry_on_failure:
            raise AirflowFailException(outcome.message)
        raise AirflowException(outcome.message)
    if outcome.failed_logical_indices:
        task.log.warning("%s; succeeding as tolerated", outcome.message)
    else:
        task.log.info("%s", outcome.message)
    return outcome.job_id


def _as_operator(task: WatchingTask) -> BaseOperator:
    # The links module takes the operator itself; every WatchingTask is one.
    return task  # type: ignore[return-value]
