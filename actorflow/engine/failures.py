"""The failure rule: a user function failed on a run; retry it, or pause the run.

Steps, callbacks, timeouts, timeout inserters and a run suspected of killing its node all
come here. Errors are counted per (process, visit): the key names the run's version, so
errors of an earlier visit to a status never add up with a later one, and a durable
counter keeps counting across restarts within one visit. At ``pause_after_err_count``
the run is paused (the pause is the caller's to store: in its batch, or at once).
"""

from __future__ import annotations

import threading

from actorflow.capabilities import ErrorCounter
from actorflow.record import Record

__all__ = ["AUTO_PAUSE_REASON", "CORRUPT_PAUSE_REASON", "ErrorCounts", "error_key", "reached_limit"]

AUTO_PAUSE_REASON = "max error retry threshold hit - automatically paused"
CORRUPT_PAUSE_REASON = "stored run unreadable - automatically paused"


def error_key(process: str, record: Record) -> str:
    """What a run's errors in ``process`` are counted under: the process and the visit."""
    return f"{process}@v{record.meta.version}"


def reached_limit(counter: ErrorCounter, process: str, record: Record, limit: int) -> bool:
    """Count one error of ``process`` on this visit of the run; True when the run must be paused.

    The one decision between retry and pause. ``limit <= 0`` never pauses (and counts
    nothing: the default retries forever, as the original does).
    """
    if limit <= 0:
        return False
    return counter.add_error(error_key(process, record), record.run_id) >= limit


class ErrorCounts:
    """Step errors per (process key, run) in this process's memory (an `ErrorCounter`).

    The memory record store keeps its counts here, and an engine whose store counts none
    falls back to one; `forget_run` drops a run's counts once its next version is stored.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}  # run id -> process key -> count

    def add_error(self, process: str, run_id: str) -> int:
        """Count one more error of (process, run); the count so far."""
        with self._lock:
            counts = self._counts.setdefault(run_id, {})
            counts[process] = counts.get(process, 0) + 1
            return counts[process]

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the errors of (process, run)."""
        with self._lock:
            counts = self._counts.get(run_id)
            if counts is not None:
                counts.pop(process, None)
                if not counts:
                    del self._counts[run_id]

    def forget_run(self, run_id: str) -> None:
        """Forget every count of ``run_id``."""
        with self._lock:
            self._counts.pop(run_id, None)
