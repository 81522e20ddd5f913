"""The engine's waiters: `await_status` and the testing helpers wake on each stored version.

Every write the engine makes is handed to its `WatchRegistry` after the commit; a waiter
registered for a run id receives each version of that run this engine stored. Writes made
elsewhere (another node, another `Workflow` object on the same store) never reach it: a
waiter also polls the store, so it never depends on this registry alone.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from typing import Self

from actorflow.record import Record
from actorflow.runstate import RunState

__all__ = ["Waiter", "WatchRegistry"]


class Waiter:
    """Receives the records stored for one run id while registered (use as a context manager)."""

    __slots__ = ("_cond", "_queue", "_registry", "notify", "run_id")

    def __init__(self, registry: WatchRegistry, run_id: str) -> None:
        self.run_id = run_id
        self._registry = registry
        self._queue: deque[Record] = deque()
        self._cond = threading.Condition(threading.Lock())
        # Called after each push (from the writing thread): wakes an asyncio waiter's loop.
        self.notify: Callable[[], object] | None = None

    def push(self, record: Record) -> None:
        """Hand the waiter a stored record; a Data Deleted one replaces the object of those not yet taken."""
        with self._cond:
            if record.run_state is RunState.DATA_DELETED:
                # As in the store: an earlier version never hands out the deleted object.
                deleted = record.object
                self._queue = deque(dataclasses.replace(queued, object=deleted) for queued in self._queue)
            self._queue.append(record)
            self._cond.notify()
        if self.notify is not None:
            self.notify()

    def take(self, timeout: float) -> list[Record]:
        """Every record pushed since the last call; waits up to ``timeout`` for one."""
        with self._cond:
            if not self._queue and timeout > 0:
                self._cond.wait(timeout)
            items = list(self._queue)
            self._queue.clear()
            return items

    def close(self) -> None:
        """Stop receiving records."""
        self._registry.unregister(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WatchRegistry:
    """The waiters of one engine, by run id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Waiter]] = {}

    def watch(self, run_id: str) -> Waiter:
        """Start receiving the records stored for ``run_id``."""
        waiter = Waiter(self, run_id)
        with self._lock:
            self._waiters.setdefault(run_id, []).append(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        """Stop handing records to ``waiter``."""
        with self._lock:
            found = self._waiters.get(waiter.run_id)
            if found is not None and waiter in found:
                found.remove(waiter)
                if not found:
                    del self._waiters[waiter.run_id]

    def publish(self, record: Record) -> None:
        """Hand a just-stored record to the waiters of its run (cheap when there are none)."""
        if record.run_id not in self._waiters:  # a racy read is fine: a waiter also polls
            return
        with self._lock:
            targets = list(self._waiters.get(record.run_id, ()))
        for waiter in targets:
            waiter.push(record)
