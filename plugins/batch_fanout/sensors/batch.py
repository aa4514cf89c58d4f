"""The batch-fanout sensor: watch a Batch job (plain or array) submitted by another task.

:class:`BatchFanoutSensor` is the watching half of a graph submitted at once with
``BatchFanoutOperator(wait_for_completion=False)``. Each poke makes one DescribeJobs call (the
parent's ``statusSummary`` for an array, whatever its size) and logs one progress line: counts per
state and done / total. It fails once the job is terminal with more failed children than
``tolerated_failures``, listing the failed logical indices with each one's ``statusReason`` and exit
code and copying the last lines of their logs into the task log; ``fail_fast`` terminates the job as
soon as more than that have failed. Deferrable mode uses
:class:`~batch_fanout.triggers.batch.BatchFanoutTrigger`, with the same progress lines.

XCom: the return value is the job id; ``failed_indices`` holds the logical indices of tolerated
failed children.

Example::

    watch = BatchFanoutSensor(task_id="watch_followers", job_id=followers.output, poke_interval=10)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.sdk.bases.sensor import PokeReturnValue

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, BatchJobState, fail_fast_reason
from batch_fanout.links.batch import SENSOR_LINKS, persist_job_links
from batch_fanout.operators._watch import finish_job, trigger_for
from batch_fanout.polling import next_poll_delay
from batch_fanout.submission import JobDescription, is_unrendered, parse_tolerated_failures

if TYPE_CHECKING:
    from airflow.sdk import Context


class BatchFanoutSensor(AwsBaseSensor[BatchFanoutClientHook]):
    """Wait for a Batch job to end; fail on failed children beyond ``tolerated_failures``.

    :param job_id: the job to watch (templated; usually ``submitting_task.output``).
    :param tolerated_failures: failed children that still let the sensor succeed (templated, rendered
        as an int).
    :param fail_fast: terminate the job as soon as more than ``tolerated_failures`` children failed.
    :param failed_log_children: copy the logs of at most this many failed children into the task log.
    :param failed_log_lines: copy at most this many last lines of each.
    :param failed_log_line_length: cut copied lines to this many characters.
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``).
    :param poke_interval: the longest pause between polls, also when deferred. In ``poke`` mode and
        deferred, the first poll is immediate and the next ones come sooner while the sensor has
        watched for less than a few intervals (:func:`batch_fanout.polling.next_poll_delay`);
        ``reschedule`` mode waits ``poke_interval`` between tries, as Airflow's sensors do.
    :param aws_conn_id: the Airflow AWS connection, ``aws_default`` by default (as the Amazon provider).
    """

    aws_hook_class = BatchFanoutClientHook
    template_fields: Sequence[str] = aws_template_fields("job_id", "tolerated_failures")
    ui_color = "#9fd3e6"
    operator_extra_links = SENSOR_LINKS

    def __init__(
        self,
        *,
        job_id: object,
        tolerated_failures: object = 0,
        fail_fast: bool = False,
        failed_log_children: int = 5,
        failed_log_lines: int = 20,
        failed_log_line_length: int = 1000,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, poke_interval=poke_interval, **kwargs)
        if not is_unrendered(tolerated_failures):
            parse_tolerated_failures(tolerated_failures)
        self.job_id = job_id
        # An int once rendered (_check_job_id); a template string before.
        self.tolerated_failures = cast("int", tolerated_failures)
        self.fail_fast = fail_fast
        self.failed_log_children = failed_log_children
        self.failed_log_lines = failed_log_lines
        self.failed_log_line_length = failed_log_line_length
        self.deferrable = deferrable
        self._linked = False

    def _check_job_id(self) -> str:
        self.tolerated_failures = parse_tolerated_failures(self.tolerated_failures)
        if not isinstance(self.job_id, str) or not self.job_id.strip():
            raise AirflowException(
                f"job_id must be a Batch job id; got {self.job_id!r} (did the submitting task return one?)"
            )
        return self.job_id.strip()

    def execute(self, context: Context) -> object:
        job_id = self._check_job_id()
        if not self.deferrable:
            return super().execute(context)
        description = self.hook.get_job_description(job_id)
        state = BatchJobState.from_description(description)
        self.log.info("%s", state.progress_line())
        if state.is_terminal:
            # _finish stores the links: storing them first as well would only repeat the XComs.
            return self._finish(context, description)
        self._link(context, description)
        self.defer(
            # A sensor only watches: killing it leaves the job it watches running.
            trigger=trigger_for(self, job_id, poll_interval=self.poke_interval, terminate_on_kill=False),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )
        return None

    def poke(self, context: Context) -> PokeReturnValue:
        job_id = self._check_job_id()
        description = self.hook.get_job_description(job_id)
        state = BatchJobState.from_description(description)
        self.log.info("%s", state.progress_line())
        if state.is_terminal:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(context, description))
        self._link(context, description)
        reason = fail_fast_reason(state, fail_fast=self.fail_fast, tolerated_failures=self.tolerated_failures)
        if reason is not None:
            self.hook.terminate(job_id, reason)
            self._finish(context, description, fail_fast=reason)
        return PokeReturnValue(is_done=False)

    def _get_next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        # Airflow's own schedule where it differs by design: exponential_backoff grows the pauses
        # beyond poke_interval, and each try of reschedule mode is a task run of its own, too
        # heavy to repeat every half second.
        if self.exponential_backoff or self.reschedule:
            return float(super()._get_next_poke_interval(started_at, run_duration, poke_count))
        return next_poll_delay(run_duration(), self.poke_interval)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        if not event or "job_id" not in event:
            raise AirflowException(f"Trigger returned no event to act on: {event!r}")
        if event.get("status") == "error":
            raise AirflowException(f"Watching AWS Batch job {event['job_id']} failed: {event.get('message')}")
        description = self.hook.get_job_description(event["job_id"])
        reason = event.get("message") if event.get("status") == "fail_fast" else None
        return self._finish(context, description, fail_fast=reason)

    def on_kill(self) -> None:
        """The sensor only watches: killing it leaves the job to the task that submitted it."""

    def _link(self, context: Context, description: JobDescription) -> None:
        if self._linked:
            return
        self._linked = True
        persist_job_links(
            context,
            self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_id=str(description["jobId"]),
            description=dict(description),
        )

    def _finish(self, context: Context, description: JobDescription, fail_fast: str | None = None) -> str:
        # The job is terminal: retrying the sensor would watch the same failed job again. To run
        # the failed children again, clear the submitting task (it resubmits only those).
        return finish_job(self, context, self.hook, description, fail_fast=fail_fast, retry_on_failure=False)
