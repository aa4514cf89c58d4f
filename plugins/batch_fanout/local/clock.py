"""The scheduling clock: the time that job queues' ``jobStateTimeLimitActions`` and fair-share decay read.

It is the wall clock plus an offset kept in the store. ``PUT /_local/clock`` with ``{"advanceSeconds":
N}`` (signed like every call; ``EndpointHandle.advance_clock`` in tests) moves it forward, so that a
test sees a job cancelled after 600 s in RUNNABLE without waiting 600 s. Job timestamps (``createdAt``,
``startedAt``...), attempt timeouts and request signatures keep to the wall clock: only the scheduling
decisions that wait on time read this one. It never goes back.
"""

from __future__ import annotations

import time
from typing import Any

from batch_fanout.local.auth import LocalCredentials, call_local
from batch_fanout.local.errors import ApiError
from batch_fanout.local.store import Store

CLOCK_PATH = "/_local/clock"
MAX_ADVANCE_SECONDS = 7 * 24 * 3600


class SchedulingClock:
    """Milliseconds of the wall clock plus the stored offset.

    :param store: where the offset persists (it holds across restarts)
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        stored = store.load_resources("clock")
        self.offset_ms = int(stored[0]["offsetMs"]) if stored else 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def advance(self, document: Any) -> None:
        """Move the clock forward by ``advanceSeconds``; ``ClientException`` naming what is wrong."""
        if not isinstance(document, dict) or set(document) != {"advanceSeconds"}:
            raise ApiError(
                "ClientException", 'The clock takes {"advanceSeconds": N} with N seconds to advance'
            )
        seconds = document["advanceSeconds"]
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_ADVANCE_SECONDS
        ):
            raise ApiError(
                "ClientException",
                f"advanceSeconds must be a number from 0 to {MAX_ADVANCE_SECONDS}, got {seconds!r}",
            )
        self.offset_ms += int(seconds * 1000)
        self.store.save_resource("clock", "offset", {"offsetMs": self.offset_ms})

    def current(self) -> dict[str, int]:
        return {"nowMs": self.now_ms(), "offsetMs": self.offset_ms}


def exchange_clock(
    url: str, credentials: LocalCredentials, advance_seconds: float | None = None, timeout: float = 10.0
) -> dict[str, int]:
    """The endpoint's scheduling clock (``GET /_local/clock``), after advancing it if asked.

    :raises RuntimeError: with the endpoint's message when it refuses the request
    """
    document = None if advance_seconds is None else {"advanceSeconds": advance_seconds}
    method = "GET" if advance_seconds is None else "PUT"
    answer: dict[str, int] = call_local(url, credentials, method, CLOCK_PATH, document, timeout=timeout)
    return answer
