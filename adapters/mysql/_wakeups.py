"""In-process wake-ups for the MySQL adapters: a commit of this process wakes its own waiters at once.

MySQL has no LISTEN/NOTIFY. Each key (a topic's events, a workflow's outbox) has a
counter, bumped after every commit of this process that wrote to it. A waiter reads the
counter *before* querying and waits for it to change, so a commit landing between its
query and its wait still wakes it. Other processes' writes are not seen here: waiters
also poll, with back-off, up to their poll interval. One `Wakeups` per database
(server, port, database) per process, shared by every adapter made for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable

__all__ = ["Wakeups", "wakeups_for"]


class Wakeups:
    """Counters and waiters per key, for one database."""

    def __init__(self) -> None:
        # One condition per key, all on one lock: a commit wakes only the waiters of its keys.
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
        """Block until ``key``'s counter moves past ``seen``, ``stop()`` is true, or ``timeout``; whether it moved."""
        with self._lock:
            condition = self._conditions.get(key)
            if condition is None:
                condition = self._conditions[key] = threading.Condition(self._lock)
            condition.wait_for(lambda: self._counters.get(key, 0) != seen or (stop is not None and stop()), timeout)
            return self._counters.get(key, 0) != seen


_all: dict[Hashable, Wakeups] = {}
_all_lock = threading.Lock()


def wakeups_for(identity: Hashable) -> Wakeups:
    """The wake-ups of the database ``identity`` (server, port, database), made on first use."""
    with _all_lock:
        found = _all.get(identity)
        if found is None:
            found = _all[identity] = Wakeups()
        return found
