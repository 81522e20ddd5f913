"""Time sources. Everything that reads the time goes through a `Clock`, so tests can move it.

The engine waits on the clock too (`wait_until`), with a cap in real seconds, so a fake
clock that is advanced wakes the waiters at once and a real clock never oversleeps a stop.
The shipped clocks can also be woken (`wake`): a node that stops cuts its processes'
waits short instead of waiting out their tick.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["AdapterClock", "Clock", "FakeClock", "SystemClock", "wake_clock"]


@runtime_checkable
class Clock(Protocol):
    """A source of wall-clock time (timezone-aware) that can be waited on."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def wait_until(self, deadline: datetime, *, timeout: float) -> None:
        """Block until ``now() >= deadline`` or ``timeout`` real seconds have passed."""
        ...


class SystemClock:
    """The real clock (UTC)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._wakes = 0  # bumped by wake(): a waiter that sees it move returns

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def wait_until(self, deadline: datetime, *, timeout: float) -> None:
        """Sleep until the deadline, but never longer than ``timeout`` seconds (or until `wake`)."""
        delay = min(timeout, (deadline - self.now()).total_seconds())
        if delay > 0:
            with self._cond:
                wakes = self._wakes
                self._cond.wait_for(lambda: self._wakes != wakes, delay)

    def wake(self) -> None:
        """Make every current `wait_until` return now (a stopping node's processes)."""
        with self._cond:
            self._wakes += 1
            self._cond.notify_all()


class FakeClock:
    """A clock that only moves when told to; for tests.

    Waiters are woken as soon as the time is advanced past their deadline.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2024, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            msg = "FakeClock needs a timezone-aware start time"
            raise ValueError(msg)
        self._now = start
        self._cond = threading.Condition()
        self._wakes = 0  # bumped by wake(): a waiter that sees it move returns

    def now(self) -> datetime:
        """The fake current time."""
        with self._cond:
            return self._now

    def set(self, when: datetime) -> None:
        """Move the clock to ``when`` (never backwards)."""
        with self._cond:
            if when < self._now:
                msg = f"FakeClock cannot go back in time: {when} < {self._now}"
                raise ValueError(msg)
            self._now = when
            self._cond.notify_all()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by ``delta`` (seconds or a timedelta); returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._cond:
            self.set(self._now + step)
            return self._now

    def wait_until(self, deadline: datetime, *, timeout: float) -> None:
        """Block until the fake time reaches ``deadline``, ``timeout`` real seconds pass, or `wake`."""
        end = time.monotonic() + timeout
        with self._cond:
            wakes = self._wakes
            while self._now < deadline and self._wakes == wakes:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def wake(self) -> None:
        """Make every current `wait_until` return now (a stopping node's processes)."""
        with self._cond:
            self._wakes += 1
            self._cond.notify_all()


class AdapterClock:
    """The clock an adapter stamps times with: its own if given, else its first workflow's.

    Event times must come from the workflow's clock (the lag and paused-run retry compare
    them with it), so a fake clock works with every adapter even when the user passes it
    only to ``build()``: the workflow lends its clock (`lend`) to the adapters it is built
    on, and an adapter made without a clock of its own takes the first one lent. Until
    then, and when made with a clock, the adapter keeps its own.
    """

    def __init__(self, own: Clock | None = None) -> None:
        self._clock: Clock = own if own is not None else SystemClock()
        self._settled = own is not None

    def lend(self, clock: Clock) -> None:
        """Use ``clock`` from now on, unless a clock was given or lent before."""
        if not self._settled:
            self._clock = clock
            self._settled = True

    def now(self) -> datetime:
        """The time by the adapter's clock."""
        return self._clock.now()

    def wait_until(self, deadline: datetime, *, timeout: float) -> None:
        """Wait on the adapter's clock."""
        self._clock.wait_until(deadline, timeout=timeout)

    def wake(self) -> None:
        """Wake the waiters of the adapter's clock, if it can be woken."""
        wake_clock(self._clock)


def wake_clock(clock: Clock) -> None:
    """`wake` ``clock`` if it has that method (the shipped clocks; a user's may not)."""
    wake = getattr(clock, "wake", None)
    if callable(wake):
        wake()
