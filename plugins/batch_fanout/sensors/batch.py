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

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf
from airflow.sdk.bases.sensor import PokeReturnValue

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, BatchJobState
from batch_fanout.hooks.batch_outcome import assess_finished_job, parse_tolerated_failures
from batch_fanout.links.batch import SENSOR_LINKS, persist_job_links
from batch_fanout.triggers.batch import BatchFanoutTrigger

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
    :param poke_interval: seconds between polls, also when deferred.
    :param aws_conn_id: the Airflow AWS connection, ``batch_fanout_aws`` by default.
    """

    aws_hook_class = BatchFanoutClientHook
    template_fields: Sequence[str] = aws_template_fields("job_id", "tolerated_failures")
    ui_color = "#9fd3e6"
    operator_extra_links = SENSOR_LINKS

    def __init__(
        self,
        *,
        job_id: Any,
        tolerated_failures: Any = 0,
        fail_fast: bool = False,
        failed_log_children: int = 5,
        failed_log_lines: int = 20,
        failed_log_line_length: int = 1000,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30,
        aws_conn_id: str | None = "batch_fanout_aws",
        **kwargs: Any,
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, poke_interval=poke_interval, **kwargs)
        if not (isinstance(tolerated_failures, str) and "{" in tolerated_failures):
            parse_tolerated_failures(tolerated_failures)
        self.job_id = job_id
        self.tolerated_failures = tolerated_failures
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

    def execute(self, context: Context) -> Any:
        job_id = self._check_job_id()
        if not self.deferrable:
            return super().execute(context)
        description = self.hook.get_job_description(job_id)
        state = BatchJobState.from_description(description)
        self.log.info("%s", state.progress_line())
        self._link(context, description)
        if state.is_terminal:
            return self._finish(context, description)
        self.defer(
            # A sensor only watches: killing it leaves the job it watches running.
            trigger=BatchFanoutTrigger.for_task(
                self, job_id, poll_interval=self.poke_interval, terminate_on_kill=False
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )
        return None

    def poke(self, context: Context) -> PokeReturnValue:
        job_id = self._check_job_id()
        description = self.hook.get_job_description(job_id)
        state = BatchJobState.from_description(description)
        self.log.info("%s", state.progress_line())
        self._link(context, description)
        if state.is_terminal:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(context, description))
        if self.fail_fast and state.failed > self.tolerated_failures:
            reason = f"fail-fast: {state.failed} children failed, more than the {self.tolerated_failures} tolerated"
            self.hook.terminate(job_id, reason)
            self._finish(context, description, fail_fast_reason=reason)
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        if not event or "job_id" not in event:
            raise AirflowException(f"Trigger returned no event to act on: {event!r}")
        if event.get("status") == "error":
            raise AirflowException(f"Watching AWS Batch job {event['job_id']} failed: {event.get('message')}")
        description = self.hook.get_job_description(event["job_id"])
        reason = event.get("message") if event.get("status") == "fail_fast" else None
        return self._finish(context, description, fail_fast_reason=reason)

    def on_kill(self) -> None:
        """The sensor only watches: killing it leaves the job to the task that submitted it."""

    def _link(self, context: Context, description: dict[str, Any]) -> None:
        if self._linked:
            return
        self._linked = True
        persist_job_links(
            context,
            self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_id=description["jobId"],
            description=description,
        )

    def _finish(
        self, context: Context, description: dict[str, Any], fail_fast_reason: str | None = None
    ) -> str:
        outcome = assess_finished_job(
            self.hook,
            description,
            tolerated_failures=self.tolerated_failures,
            log=self.log,
            failed_log_children=self.failed_log_children,
            failed_log_lines=self.failed_log_lines,
            failed_log_line_length=self.failed_log_line_length,
            fail_fast_reason=fail_fast_reason,
        )
        if outcome.failed_children:
            first = outcome.failed_children[0]
            persist_job_links(
                context,
                self,
                region_name=self.hook.conn_region_name,
                aws_partition=self.hook.conn_partition,
                job_id=outcome.job_id,
                description=description,
                first_failed_child={
                    "job_id": first.job_id,
                    "log_group": first.log_group,
                    "log_stream": first.log_stream,
                },
            )
        if self.do_xcom_push:
            context["ti"].xcom_push(key="failed_indices", value=outcome.failed_logical_indices)
        if not outcome.succeeded:
            # The job is terminal: retrying the sensor would watch the same failed job again. To run
            # the failed children again, clear the submitting task (it resubmits only those).
            raise AirflowFailException(outcome.message)
        if outcome.failed_logical_indices:
            self.log.warning("%s; succeeding as tolerated", outcome.message)
        else:
            self.log.info("%s", outcome.message)
        return outcome.job_id
