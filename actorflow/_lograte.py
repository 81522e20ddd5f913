"""Rate-limited logging of repeated failures, so an outage costs a few lines, not thousands.

A node whose stderr is piped to a slow reader blocks on logging: a database outage that
logged every reconnect attempt and every restart could stall it. Two tools:

- `Streak`: one failing thing of ours (a connection, a process). Its first failure of
  a kind is logged, repeats are only counted, and `recovered` ends the streak with the
  count and the duration, for the caller's one recovery line.
- `RepeatFilter`: a `logging.Filter` for a third-party logger we cannot change (the
  connection pool's), installed once with `install_filter`. The first record of a
  template passes; the same template again within ``window`` seconds is dropped and
  counted; the next one let through says how many were dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RepeatFilter", "Streak", "install_filter"]


class Streak:
    """The failures of one thing since it last worked: the first of each kind logged, the rest counted."""

    def __init__(self, log: logging.Logger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._since: float | None = None
        self._kinds: set[str] = set()

    def failed(self, kind: str, msg: str, *args: object, level: int = logging.WARNING, **kwargs: object) -> bool:
        """Count one failure of ``kind``; log ``msg % args`` only if it is the streak's first of that kind.

        ``kwargs`` go to `logging.Logger.log` (``exc_info``). True when it was logged.
        """
        with self._lock:
            self._count += 1
            if self._since is None:
                self._since = self._clock()
            first = kind not in self._kinds
            self._kinds.add(kind)
        if first:
            self._log.log(level, msg, *args, **kwargs)  # type: ignore[arg-type]
        return first

    @property
    def failing(self) -> bool:
        """Whether a streak is in progress (a failure since the last `recovered`)."""
        with self._lock:
            return self._since is not None

    def recovered(self) -> tuple[int, float] | None:
        """End the streak: (failures, seconds since the first), or None if nothing failed."""
        with self._lock:
            if self._since is None:
                return None
            ended = (self._count, self._clock() - self._since)
            self._count, self._since = 0, None
            self._kinds.clear()
            return ended


class RepeatFilter(logging.Filter):
    """Drops repeats of a record (same template, same first argument if a string) within ``window`` seconds."""

    def __init__(self, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str | None], tuple[float, int]] = {}  # key -> (when let through, dropped since)

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the record through unless it repeats one let through less than ``window`` seconds ago."""
        args = record.args if isinstance(record.args, tuple) else ()
        key = (str(record.msg), args[0] if args and isinstance(args[0], str) else None)
        now = self._clock()
        with self._lock:
            last, dropped = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.window:
                self._seen[key] = (last, dropped + 1)
                return False
            self._seen[key] = (now, 0)
        if dropped and isinstance(record.args, tuple):
            record.msg = f"{record.msg} (%d more like it in the last %.0fs)"
            record.args = (*record.args, dropped, now - (last or now))
        return True


def install_filter(name: str, make: Callable[[], logging.Filter]) -> None:
    """Add ``make()`` to the logger ``name`` unless a filter of its type is there already (once per process)."""
    log = logging.getLogger(name)
    with _INSTALL_LOCK:
        made = make()
        if not any(type(f) is type(made) for f in log.filters):
            log.addFilter(made)


_INSTALL_LOCK = threading.Lock()
