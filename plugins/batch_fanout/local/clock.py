"""The scheduling clock: the time that job queues' ``jobStateTimeLimitActions`` and fair-share decay read.

It is the wall clock plus an offset kept in the store. ``PUT /_local/clock`` with ``{"advanceSeconds":
N}`` (signed like every call; ``EndpointHandle.advance_clock`` in tests) moves it forward, so that a
test sees a job cancelled after 600 s in RUNNABLE without waiting 600 s. Job timestamps (``createdAt``,
``startedAt``...), attempt timeouts and request signatures keep to the wall clock: only the scheduling
decisions that wait on time read this one. It never goes back.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from batch_fanout.local import DEFAULT_REGION
from batch_fanout.local.auth import LocalCredentials, signed_headers
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
    clock_url = f"{url}{CLOCK_PATH}"
    body = b"" if advance_seconds is None else json.dumps({"advanceSeconds": advance_seconds}).encode()
    method = "GET" if advance_seconds is None else "PUT"
    headers = signed_headers(
        method,
        clock_url,
        credentials=credentials,
        region=DEFAULT_REGION,
        body=body,
        headers={"Content-Type": "application/json"},
    )
    request = urllib.request.Request(clock_url, data=body or None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, int] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(json.loads(error.read() or b"{}").get("message", str(error))) from error
    return answer
