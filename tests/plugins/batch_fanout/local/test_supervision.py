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
