"""The restart back-off: exponential with jitter, reset after a stable run, capped by intensity."""

from __future__ import annotations

import pytest

from actorflow.runtime import restart
from actorflow.runtime.restart import RestartPolicy, RestartTracker


class Time:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Time:
    fake = Time()
    monkeypatch.setattr(restart.time, "monotonic", fake)
    return fake


POLICY = RestartPolicy(initial=0.1, maximum=1.0, jitter=0.05, stable_after=10, max_restarts=100, window=60)


def test_back_off_doubles_from_initial_with_jitter_up_to_the_maximum(now: Time) -> None:
    tracker = RestartTracker(POLICY)
    delays = []
    for _ in range(7):
        tracker.started()
        now.now += 0.01
        delays.append(tracker.crashed())
    expected = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for delay, base in zip(delays, expected, strict=True):
        assert base <= delay <= base + POLICY.jitter, delays


def test_back_off_starts_over_after_a_stable_run(now: Time) -> None:
    tracker = RestartTracker(POLICY)
    for _ in range(3):
        tracker.started()
        tracker.crashed()
    tracker.started()
    now.now += POLICY.stable_after
    assert tracker.stable()
    assert tracker.crashed() <= POLICY.initial + POLICY.jitter


def test_too_many_crashes_within_the_window_mark_the_process_failed(now: Time) -> None:
    policy = RestartPolicy(initial=0.1, maximum=5.0, jitter=0.0, stable_after=100, max_restarts=3, window=60)
    tracker = RestartTracker(policy)
    for _ in range(3):
        tracker.started()
        now.now += 1
        tracker.crashed()
        assert not tracker.failed
    tracker.started()
    assert tracker.crashed() == policy.maximum  # still restarted, at the longest back-off
    assert tracker.failed
    # Once the crashes age out of the window, it is no longer failed.
    now.now += policy.window + 1
    tracker.started()
    tracker.crashed()
    assert not tracker.failed
