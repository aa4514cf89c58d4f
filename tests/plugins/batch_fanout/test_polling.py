"""The poll schedule of every watcher: the first polls soon, never a pause above ``poll_interval``,
and a job's end noticed within a share of the time watched."""

from __future__ import annotations

import pytest

from batch_fanout.polling import JITTER, MIN_POLL_SECONDS, WATCH_FRACTION, next_poll_delay


def poll_times(poll_interval: float, until: float) -> list[float]:
    """When a watcher that starts at 0 polls, up to ``until`` (no jitter: the latest it may poll)."""
    times = [0.0]
    while times[-1] < until:
        times.append(times[-1] + next_poll_delay(times[-1], poll_interval, jitter=False))
    return times


@pytest.mark.parametrize("poll_interval", [0.2, 1, 5, 30])
def test_no_pause_is_longer_than_the_poll_interval_and_they_grow_to_it(poll_interval: float) -> None:
    times = poll_times(poll_interval, 10 * poll_interval)
    pauses = [next_poll_delay(at, poll_interval, jitter=False) for at in times[:-1]]
    assert max(pauses) == pytest.approx(poll_interval)
    assert pauses == sorted(pauses)
    assert pauses[0] == min(poll_interval, MIN_POLL_SECONDS)
    # After poll_interval / WATCH_FRACTION of watching, it polls once per interval, as a fixed interval.
    assert all(
        pause == pytest.approx(poll_interval)
        for pause, at in zip(pauses, times[:-1], strict=True)
        if at >= poll_interval / WATCH_FRACTION
    )


@pytest.mark.parametrize("ends_at", [0.1, 0.7, 1.5, 3.0, 8.0, 40.0, 300.0])
def test_an_end_is_noticed_within_a_share_of_the_time_watched(ends_at: float) -> None:
    poll_interval = 30.0
    times = poll_times(poll_interval, ends_at + poll_interval)
    noticed = min(at for at in times if at >= ends_at)
    assert noticed - ends_at <= min(poll_interval, max(MIN_POLL_SECONDS, WATCH_FRACTION * noticed))


def test_a_long_job_costs_a_few_polls_more_than_a_fixed_interval() -> None:
    # An hour of watching with a 30 s interval: 120 polls at a fixed interval, two dozen more here.
    polls = len(poll_times(30.0, 3600.0))
    assert 120 < polls <= 120 + 24


def test_jitter_only_shortens_a_pause() -> None:
    for watched in (0.0, 1.0, 4.0, 100.0):
        fixed = next_poll_delay(watched, 5.0, jitter=False)
        for _ in range(50):
            assert (1 - JITTER) * fixed <= next_poll_delay(watched, 5.0) <= fixed


@pytest.mark.parametrize(
    ("watched", "interval", "message"), [(0.0, 0.0, "poll_interval"), (-1.0, 5.0, "watched_seconds")]
)
def test_bad_arguments_are_named(watched: float, interval: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next_poll_delay(watched, interval)
