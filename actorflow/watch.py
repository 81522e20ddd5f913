"""In-process notification of stored records, so `await_status` wakes at once.

Every write the engine makes goes through `publish`; a waiter registered for a run id
receives each stored version. Writes made by other processes are found by polling the
store at the workflow's polling frequency, so a waiter never depends on this hub alone.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Self

from actorflow.record import Record

__all__ = ["Waiter", "publish", "watch"]


class Waiter:
    """Receives the records stored for one run id while registered."""

    __slots__ = ("_cond", "_queue", "run_id")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._queue: deque[Record] = deque()
        self._cond = threading.Condition(threading.Lock())

    def push(self, record: Record) -> None:
        """Hand the waiter a stored record."""
        with self._cond:
            self._queue.append(record)
            self._cond.notify()

    def take(self, timeout: float) -> list[Record]:
        """Every record pushed since the last call; waits up to ``timeout`` for one."""
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout)
            items = list(self._queue)
            self._queue.clear()
            return items

    def close(self) -> None:
        """Stop receiving records."""
        _unregister(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_lock = threading.Lock()
_waiters: dict[str, list[Waiter]] = {}


def watch(run_id: str) -> Waiter:
    """Start receiving the records stored for ``run_id`` (use as a context manager)."""
    waiter = Waiter(run_id)
    with _lock:
        _waiters.setdefault(run_id, []).append(waiter)
    return waiter


def _unregister(waiter: Waiter) -> None:
    with _lock:
        found = _waiters.get(waiter.run_id)
        if found is not None and waiter in found:
            found.remove(waiter)
            if not found:
                del _waiters[waiter.run_id]


def publish(record: Record) -> None:
    """Hand a just-stored record to the waiters of its run (cheap when there are none)."""
    if record.run_id not in _waiters:
        return
    with _lock:
        targets = list(_waiters.get(record.run_id, ()))
    for waiter in targets:
        waiter.push(record)
