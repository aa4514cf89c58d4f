"""Supervisors started in batches through the fork server, and the notification of recorded ends.

These drive ``Supervision`` directly (real fork server, real supervisors, real job processes): the
engine relies on one round trip starting every attempt of a round, and on the notification pipe
telling it of an end before the supervisor has exited.
"""

from __future__ import annotations

import selectors
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.runtime import (
    AttemptRequest,
    ProcessSpec,
    Supervision,
    SupervisorHandle,
    job_environment,
)

BOUND_SECONDS = 60.0


@pytest.fixture
def supervision(tmp_path: Path) -> Iterator[Supervision]:
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    supervision = Supervision(logs_dir, kill_grace_seconds=1.0, max_log_bytes=1 << 20)
    yield supervision
    supervision.close()


def _request(attempt_id: str) -> AttemptRequest:
    return AttemptRequest(attempt_id, "local/test:1", ["unused"], {}, 1.0, 0, None)


def _python(tmp_path: Path, code: str, *arguments: str) -> ProcessSpec:
    return ProcessSpec([sys.executable, "-c", code, *arguments], tmp_path, job_environment({}))


def _collect(supervision: Supervision, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The statuses of ``wanted``, gathered as the notification pipe says they are recorded."""
    statuses: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + BOUND_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(supervision.notify, selectors.EVENT_READ)
        while not wanted <= statuses.keys():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no status recorded for {sorted(wanted - statuses.keys())}"
            selector.select(remaining)
            statuses.update(supervision.finished())
    return statuses


def test_one_batch_starts_a_supervisor_per_attempt_and_each_end_is_notified(
    supervision: Supervision, tmp_path: Path
) -> None:
    code = "import sys; print('child', sys.argv[1]); sys.exit(int(sys.argv[1]) % 3)"
    launches = [(_request(f"attempt-{index}"), _python(tmp_path, code, str(index))) for index in range(12)]
    missing = (
        _request("attempt-missing"),
        ProcessSpec(["no-such-program-here"], tmp_path, job_environment({})),
    )
    launches.insert(5, missing)

    results = supervision.launch_many(launches)

    assert all(isinstance(result, SupervisorHandle) for result in results)
    handles = [result for result in results if isinstance(result, SupervisorHandle)]
    assert [handle.attempt_id for handle in handles] == [request.attempt_id for request, _ in launches]
    assert len({handle.pid for handle in handles}) == len(launches)
    statuses = _collect(supervision, {request.attempt_id for request, _ in launches})
    for index in range(12):
        attempt_id = f"attempt-{index}"
        assert statuses[attempt_id]["returncode"] == index % 3
        assert statuses[attempt_id]["cause"] is None
        assert f"child {index}" in supervision.log_path(attempt_id).read_text()
    assert "no-such-program-here" in statuses["attempt-missing"]["startError"]
    # Taken once: a second look reports nothing new.
    assert supervision.finished() == {}


def test_a_status_taken_from_the_notification_is_also_what_status_reads(
    supervision: Supervision, tmp_path: Path
) -> None:
    handle = supervision.launch(_request("attempt-once"), _python(tmp_path, "raise SystemExit(4)"))

    statuses = _collect(supervision, {handle.attempt_id})

    assert statuses[handle.attempt_id]["returncode"] == 4
    assert supervision.status(handle.attempt_id) == statuses[handle.attempt_id]
    supervision.forget(handle.attempt_id)
    assert supervision.status(handle.attempt_id) is None


WAIT_FOR_FILE = (
    "import os, sys, time\n"
    "deadline = time.monotonic() + 30\n"
    "while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:\n"
    "    time.sleep(0.01)\n"
    "sys.exit(0 if os.path.exists(sys.argv[1]) else 9)\n"
)


def test_a_released_supervisor_takes_another_attempt_and_a_stop_meant_for_the_last_one_is_dropped(
    supervision: Supervision, tmp_path: Path
) -> None:
    handle = supervision.launch(_request("first"), _python(tmp_path, "pass"))
    _collect(supervision, {handle.attempt_id})
    for round_number in range(20):
        # A stop that crossed the end of the attempt it was meant for, then the endpoint's release.
        supervision.stop(handle)
        supervision.release([handle])
        go = tmp_path / f"go-{round_number}"
        following = supervision.launch(
            _request(f"next-{round_number}"), _python(tmp_path, WAIT_FOR_FILE, str(go))
        )
        go.touch()
        status = _collect(supervision, {following.attempt_id})[following.attempt_id]
        assert (status["returncode"], status["cause"], status["stopRequested"]) == (0, None, False)
        if following.pid == handle.pid:
            break  # the released supervisor was reused, and ran its new attempt to the end
        handle = following
    else:
        pytest.fail("no released supervisor was given another attempt in 20 rounds")
