"""In-process wake-ups: a counter and waiters per key, for the SQL adapters.

Each key (a topic's events, a workflow's outbox) has a counter, bumped for every change
the process hears of: for SQLite and MySQL (no LISTEN/NOTIFY) after every commit of this
process that wrote to it, for PostgreSQL by its LISTEN thread on each notification. A
waiter reads the counter *before* querying and waits for it to change, so a change
landing between its query and its wait still wakes it. SQLite and MySQL waiters also
poll, for the writes of other processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["PerProcess", "Wakeups"]

T = TypeVar("T")


class Wakeups:
    """Counters and waiters per key, for one database."""

    def __init__(self) -> None:
        # One condition per key, all on one lock: a commit wakes only the waiters of the
        # keys it wrote (a node has a receiver per topic; waking all costs them GIL time).
        self._lock = threading.Lock()
        self._conditions: dict[str, threading.Condition] = {}
        self._counters: dict[str, int] = {}
        self._epoch = 0  # `bump_all` calls: part of every key's counter

    def counter(self, key: str) -> int:
        """The current counter of ``key``."""
        with self._lock:
            return self._counter(key)

    def _counter(self, key: str) -> int:
        return self._epoch + self._counters.get(key, 0)

    def bump(self, keys: Iterable[str]) -> None:
        """Count a commit for each key and wake its waiters."""
        with self._lock:
            for key in keys:
                self._counters[key] = self._counters.get(key, 0) + 1
                condition = self._conditions.get(key)
                if condition is not None:
                    condition.notify_all()

    def bump_all(self) -> None:
        """Count a change of every key, also of keys no one has bumped or waited on yet, and wake all waiters.

        For when anything may have changed unheard (a LISTEN connection lost and made again).
        """
        with self._lock:
            self._epoch += 1
            for condition in self._conditions.values():
                condition.notify_all()

    def nudge(self, key: str) -> None:
        """Wake ``key``'s waiters so they re-check their stop condition (its counter unmoved)."""
        with self._lock:
            condition = self._conditions.get(key)
            if condition is not None:
                condition.notify_all()

    def wake(self) -> None:
        """Wake every waiter so it re-checks its stop condition."""
        with self._lock:
            for condition in self._conditions.values():
                condition.notify_all()

    def wait(self, key: str, seen: int, timeout: float, stop: Callable[[], bool] | None = None) -> bool:
        """Block until ``key``'s counter moves past ``seen``, ``stop()`` is true, or ``timeout``.

        Returns True when the counter moved.
        """
        with self._lock:
            condition = self._conditions.get(key)
            if condition is None:
                condition = self._conditions[key] = threading.Condition(self._lock)
            condition.wait_for(lambda: self._counter(key) != seen or (stop is not None and stop()), timeout)
            return self._counter(key) != seen

    def wait_until(self, key: str, found: Callable[[], bool], timeout: float, poll: float) -> None:
        """Return once ``found()`` is true, a commit of this process bumps ``key``, or ``timeout`` passes.

        ``found`` is called again every ``poll`` seconds, for the writes of other processes.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.counter(key)  # before looking: a commit after the look still wakes us
            if found():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.wait(key, seen, min(remaining, poll)):
                return


class PerProcess(Generic[T]):
    """One ``make()`` per key (a database) in this process, made on first use: what its adapters share."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._found: dict[Hashable, T] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> T:
        """The one of ``key``, made now if there is none yet."""
        with self._lock:
            found = self._found.get(key)
            if found is None:
                found = self._found[key] = self._make()
            return found
