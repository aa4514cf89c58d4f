"""Job queues' ``jobStateTimeLimitActions``: a job at the head of its queue in RUNNABLE for longer than
``maxTimeSeconds`` is cancelled with the action's ``reason`` as its ``statusReason``.

AWS counts the time a job has stayed at the head of the queue (first in dispatch order, yet not placed:
it blocks the jobs behind it). The time is the scheduling clock's (``clock``), which tests advance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batch_fanout.local.errors import client_error

if TYPE_CHECKING:
    from batch_fanout.local.clock import SchedulingClock
    from batch_fanout.local.jobs import Job

MIN_TIME_LIMIT_SECONDS = 600
MAX_TIME_LIMIT_SECONDS = 86_400


def check_time_limit_actions(actions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """CreateJobQueue's and UpdateJobQueue's checks of ``jobStateTimeLimitActions`` (AWS's ranges)."""
    for position, action in enumerate(actions or []):
        where = f"jobStateTimeLimitActions[{position}]"
        seconds = action["maxTimeSeconds"]
        if not MIN_TIME_LIMIT_SECONDS <= seconds <= MAX_TIME_LIMIT_SECONDS:
            raise client_error(
                f"{where}.maxTimeSeconds must be between {MIN_TIME_LIMIT_SECONDS} and "
                f"{MAX_TIME_LIMIT_SECONDS}, got {seconds}"
            )
        if action["state"] != "RUNNABLE":
            raise client_error(f"{where}.state must be RUNNABLE, got {action['state']!r}")
        if action["action"] != "CANCEL":
            raise client_error(
                f"{where}.action must be CANCEL for a job queue of compute environments "
                f"(TERMINATE is for SageMaker Training service environments), got {action['action']!r}"
            )
        if not action["reason"]:
            raise client_error(f"{where}.reason must not be empty")
    return list(actions or [])


class TimeLimits:
    """When each queue's head job reached the head, and the cancellations that are due.

    :param clock: the scheduling clock
    """

    def __init__(self, clock: SchedulingClock) -> None:
        self.clock = clock
        self._heads: dict[str, tuple[str, int, int]] = {}  # queue ARN -> (job id, since, deadline)

    def check(self, queue: dict[str, Any], head: Job | None, cancel: Callable[[Job, str], None]) -> bool:
        """Cancel ``head`` when it has been at the head of ``queue`` too long; returns whether it did."""
        queue_arn = queue["jobQueueArn"]
        actions = queue.get("jobStateTimeLimitActions") or []
        if not actions or head is None:
            self._heads.pop(queue_arn, None)
            return False
        now = self.clock.now_ms()
        known = self._heads.get(queue_arn)
        since = known[1] if known is not None and known[0] == head.job_id else now
        first = min(actions, key=lambda action: int(action["maxTimeSeconds"]))
        deadline = since + int(first["maxTimeSeconds"]) * 1000
        if now >= deadline:
            self._heads.pop(queue_arn, None)
            cancel(head, str(first["reason"]))
            return True
        self._heads[queue_arn] = (head.job_id, since, deadline)
        return False

    def retain(self, queue_arns: set[str]) -> None:
        """Forget the heads of queues that are not scheduled now (disabled or deleted)."""
        for queue_arn in set(self._heads) - queue_arns:
            del self._heads[queue_arn]

    def next_deadline_ms(self) -> int | None:
        """The scheduling clock's time of the next due cancellation, if any."""
        return min((deadline for _, _, deadline in self._heads.values()), default=None)
