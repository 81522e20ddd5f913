"""Threads that run the slow part of a consumer's events beside each other (steps that wait on I/O)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Workers"]

_STOP = object()


class Workers:
    """Up to ``limit`` daemon threads, started only when work waits and none is idle.

    Each job's result (or exception) goes to ``done(token, result, error)`` on the worker's
    thread. Daemon threads, because a user's step that never returns must not keep the
    process alive; `close` asks every thread to end after its job and does not wait for
    one that hangs.
    """

    def __init__(self, name: str, limit: int, done: Callable[[Any, Any, BaseException | None], None]) -> None:
        self._name = name
        self._limit = limit
        self._done = done
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, token: Any, job: Callable[[], Any]) -> None:
        """Run ``job`` on a worker thread (a new one if none is idle and the limit allows)."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._limit:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-worker-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put((token, job))

    def close(self, timeout: float = 1.0) -> None:
        """End every thread after its job; join them for at most ``timeout`` seconds in all."""
        with self._lock:
            threads, self._threads, self._idle = self._threads, [], 0
        for _ in threads:
            self._jobs.put(_STOP)
        per_thread = timeout / max(1, len(threads))
        for thread in threads:
            thread.join(per_thread)

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            token, job = item
            try:
                result, error = job(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
                result, error = None, exc
            self._done(token, result, error)
            with self._lock:
                self._idle += 1
