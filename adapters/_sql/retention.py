"""Event retention for the SQL event logs: delete events past an age, off the hot path, in batches.

A streamer calls `Retention.poke` from its receivers and senders: one clock read when
nothing is due. Every ``every`` seconds (and at the first poke) a poke starts a
background thread that deletes the events older than the retention, ``batch`` rows per
transaction, until a batch comes back short, so neither a receive nor a long backlog
ever waits on it and no single transaction holds locks for long. It runs whether
receivers are idle or busy. Each dialect supplies its own ``delete_batch`` statement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

__all__ = ["DEFAULT_RETENTION", "Retention"]

DEFAULT_RETENTION = timedelta(days=7)

DeleteBatch = Callable[[datetime, int], int]
"""``delete_batch(cutoff, limit)``: delete at most ``limit`` events created before ``cutoff``; how many."""


class Retention:
    """Deletes a log's events older than ``seconds`` (``None``: keeps everything).

    Args:
        seconds: the retention.
        now: the adapter's clock (events are stamped with it).
        delete_batch: the dialect's bounded delete.
        name: names the thread and the log lines.
        log: where failures are reported (the next run tries again).
        batch: rows per delete.
        every: seconds between runs.

    Attributes:
        seconds, batch, every: as given; ``batch`` and ``every`` may be changed later.
        delete_batch: the dialect's bounded delete, as given (a test may wrap it).
    """

    def __init__(
        self,
        seconds: float | None,
        *,
        now: Callable[[], datetime],
        delete_batch: DeleteBatch,
        name: str,
        log: logging.Logger,
        batch: int = 1000,
        every: float = 600.0,
    ) -> None:
        if seconds is not None and not seconds > 0:
            msg = f"retention must be a positive duration or None, got {seconds!r} seconds"
            raise ValueError(msg)
        self.seconds = seconds
        self.batch = batch
        self.every = every
        self._now = now
        self.delete_batch = delete_batch
        self._name = name
        self._log = log
        self._lock = threading.Lock()
        self._due = float("-inf")  # the first poke starts a run
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def poke(self) -> None:
        """Start a clean-up in the background if one is due (cheap when none is)."""
        if self.seconds is None or time.monotonic() < self._due:
            return
        with self._lock:
            now = time.monotonic()
            if now < self._due or (self._thread is not None and self._thread.is_alive()):
                return
            self._due = now + self.every
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._background, args=(self._stopping,), name=f"actorflow-retention-{self._name}", daemon=True
            )
            self._thread.start()

    def run(self, stopping: threading.Event | None = None) -> int:
        """Delete every event past the retention now, batch by batch; how many were deleted."""
        if self.seconds is None:
            return 0
        cutoff = self._now() - timedelta(seconds=self.seconds)
        total = 0
        while stopping is None or not stopping.is_set():
            deleted = self.delete_batch(cutoff, self.batch)
            total += deleted
            if deleted < self.batch:
                break
        return total

    def _background(self, stopping: threading.Event) -> None:
        try:
            deleted = self.run(stopping)
        except Exception:  # noqa: BLE001 - reported; the next run tries again
            self._log.warning("%s: deleting events past the retention failed", self._name, exc_info=True)
        else:
            if deleted:
                self._log.info("%s: deleted %d events past the retention", self._name, deleted)

    def halt(self) -> None:
        """Tell a running clean-up to stop after its current batch (does not wait)."""
        with self._lock:
            self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a running clean-up to end (the next due poke starts another)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """`halt`, then `join`."""
        self.halt()
        self.join(timeout)
