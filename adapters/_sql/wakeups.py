"""In-process wake-ups for SQL adapters without LISTEN/NOTIFY (SQLite, MySQL): a commit wakes its own waiters.

Each key (a topic's events, a workflow's outbox) has a counter, bumped after every
commit of this process that wrote to it. A waiter reads the counter *before* querying
and waits for it to change, so a commit landing between its query and its wait still
wakes it. Writes of other processes are not seen here: waiters also poll.
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

    def counter(self, key: str) -> int:
        """The current counter of ``key``."""
        with self._lock:
            return self._counters.get(key, 0)

    def bump(self, keys: Iterable[str]) -> None:
        """Count a commit for each key and wake its waiters."""
        with self._lock:
            for key in keys:
                self._counters[key] = self._counters.get(key, 0) + 1
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
            condition.wait_for(
                lambda: self._counters.get(key, 0) != seen or (stop is not None and stop()),
                timeout,
            )
            return self._counters.get(key, 0) != seen

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
