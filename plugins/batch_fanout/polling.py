"""When the next DescribeJobs poll of a watched job is due: soon at first, then every ``poll_interval``.

The operator (``wait_for_completion``), the sensor and the trigger all watch a job with one
DescribeJobs call per poll (the parent's ``statusSummary`` for an array, whatever its size). A fixed
interval makes a watcher that starts shortly before its job ends notice the end up to a whole
interval late, and a DAG whose tasks watch one stage after another pays that once per stage. So the
first poll is immediate, and the delay before each next one grows with how long the task has been
watching: :data:`WATCH_FRACTION` of the time watched so far, at least :data:`MIN_POLL_SECONDS`,
never more than ``poll_interval``. A job that ends ``t`` seconds after its watcher started is seen
within ``max(MIN_POLL_SECONDS, WATCH_FRACTION * t)`` (and within ``poll_interval`` always); a long
job costs about two dozen extra calls (14 in the first 10 s) before the pauses reach ``poll_interval``,
then one per interval.
"""

from __future__ import annotations

import random

#: The shortest pause between two polls of one job, in seconds. Short enough that a watcher of a
#: job that is about to end notices within a fraction of a second; long enough that many watchers
#: starting together stay well below the DescribeJobs rate AWS allows.
MIN_POLL_SECONDS = 0.25
#: The pause before the next poll, as a share of the time the task has watched so far.
WATCH_FRACTION = 0.3
#: Polls are spread over the last part of each pause (``[1 - JITTER, 1]`` of it), so that many
#: watchers started together do not poll in step; the upper bound keeps every promise above.
JITTER = 0.2


def next_poll_delay(watched_seconds: float, poll_interval: float, *, jitter: bool = True) -> float:
    """Seconds to wait before the next poll of a job, after watching it for ``watched_seconds``.

    :param watched_seconds: time since the task started watching the job (0 for the first pause).
    :param poll_interval: the task's poll interval: the longest pause between two polls.
    :param jitter: spread the pause over ``[1 - JITTER, 1]`` of itself (off for a fixed schedule).
    :raises ValueError: if ``poll_interval`` is not positive or ``watched_seconds`` is negative.
    """
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
    if watched_seconds < 0:
        raise ValueError(f"watched_seconds must be >= 0, got {watched_seconds}")
    delay = min(poll_interval, max(MIN_POLL_SECONDS, WATCH_FRACTION * watched_seconds))
    return delay * random.uniform(1 - JITTER, 1.0) if jitter else delay
