"""The trigger that watches a Batch job (plain or array) for the deferrable operator and sensor.

:class:`BatchFanoutTrigger` polls one DescribeJobs call at a time, at most ``poll_interval`` apart
and sooner in its first seconds (:func:`batch_fanout.polling.next_poll_delay`; the parent's
``statusSummary`` for an array, whatever its size), logs one progress line per poll, terminates the
job when ``fail_fast`` is set and more than ``tolerated_failures`` children have failed, and fires one
event once the job is terminal. The task decides success or failure from that event (failed children,
their logs), so the trigger stays free of side effects apart from fail-fast and ``on_kill``.

Event payload: ``{"status": "terminal" | "fail_fast" | "error", "job_id": ..., "state": {...},
"message": ...}`` where ``state`` is :meth:`BatchJobState.to_dict`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, BatchJobState, fail_fast_reason
from batch_fanout.polling import next_poll_delay


class BatchFanoutTrigger(BaseTrigger):
    """Wait for a Batch job to end, logging array progress; optionally fail fast.

    :param job_id: the Batch job id (an array parent or a plain job).
    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: AWS region, overriding the connection's.
    :param verify: SSL verification, as for the Amazon provider's hooks.
    :param botocore_config: botocore client configuration.
    :param poll_interval: the longest pause between polls; a finished job is seen within one
        interval, and sooner while the trigger has watched it for less than a few.
    :param tolerated_failures: failed children that do not fail the task.
    :param fail_fast: terminate the job as soon as more than ``tolerated_failures`` children failed.
    :param terminate_on_kill: terminate the job when a user kills the deferred task.
    """

    def __init__(
        self,
        *,
        job_id: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        poll_interval: float = 30,
        tolerated_failures: int = 0,
        fail_fast: bool = False,
        terminate_on_kill: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        if not job_id:
            raise ValueError("job_id must be a non-empty Batch job id")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        if tolerated_failures < 0:
            raise ValueError(f"tolerated_failures must be >= 0, got {tolerated_failures}")
        self.job_id = job_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.poll_interval = poll_interval
        self.tolerated_failures = tolerated_failures
        self.fail_fast = fail_fast
        self.terminate_on_kill = terminate_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "poll_interval": self.poll_interval,
                "tolerated_failures": self.tolerated_failures,
                "fail_fast": self.fail_fast,
                "terminate_on_kill": self.terminate_on_kill,
            },
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BatchFanoutTrigger) and self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]

    def hook(self) -> BatchFanoutClientHook:
        return BatchFanoutClientHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def _event(self, status: str, state: BatchJobState | None, message: str) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "job_id": self.job_id,
                "state": state.to_dict() if state else None,
                "message": message,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        # A trigger may run more than once (a triggerer restart): each run watches anew, polling
        # soon at first, which costs a few calls and never misses an end.
        watch_started = time.monotonic()
        try:
            while True:
                state = await hook.a_job_state(self.job_id)
                line = state.progress_line()
                self.log.info("%s", line)
                if state.is_terminal:
                    yield self._event("terminal", state, line)
                    return
                reason = fail_fast_reason(
                    state, fail_fast=self.fail_fast, tolerated_failures=self.tolerated_failures
                )
                if reason is not None:
                    await hook.a_terminate(self.job_id, reason)
                    yield self._event("fail_fast", state, reason)
                    return
                await asyncio.sleep(next_poll_delay(time.monotonic() - watch_started, self.poll_interval))
        except Exception as error:
            self.log.exception("Watching AWS Batch job %s failed", self.job_id)
            yield self._event("error", None, str(error))

    async def on_kill(self) -> None:
        """The user killed the deferred task: terminate the job, as the operator's ``on_kill`` does."""
        if not self.terminate_on_kill:
            return
        await self.hook().a_terminate(self.job_id, "Airflow task killed while deferred")


def event_state(event: dict[str, Any]) -> BatchJobState | None:
    """The :class:`BatchJobState` carried by an event of :class:`BatchFanoutTrigger`, if any."""
    state = event.get("state")
    return BatchJobState.from_dict(state) if state else None
