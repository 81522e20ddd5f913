"""The shipped clocks' waits can be cut short (`wake`), so a stopping node does not wait out a tick."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import actorflow as af
from actorflow.clock import AdapterClock, wake_clock


@pytest.mark.parametrize("make", [af.SystemClock, af.FakeClock, lambda: AdapterClock(af.SystemClock())])
def test_wake_makes_a_waiting_wait_until_return(make):
    clock = make()
    returned = threading.Event()
    started = threading.Event()

    def wait() -> None:
        started.set()
        clock.wait_until(clock.now() + timedelta(hours=1), timeout=60.0)
        returned.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        started.wait(5)
        # The waiter may not be waiting yet: wake until it returns (each wake ends the waits in progress).
        while not returned.wait(0.01):
            wake_clock(clock)
    finally:
        waiter.join(timeout=70)
    assert returned.is_set()


def test_a_clock_without_wake_is_left_alone():
    class Plain:
        def now(self):  # pragma: no cover - never read
            raise AssertionError

        def wait_until(self, deadline, *, timeout):  # pragma: no cover - never called
            raise AssertionError

    wake_clock(Plain())  # no error: nothing to wake
