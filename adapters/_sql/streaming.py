"""What the SQL event streamers share: the clock and retention of the log, buffered senders, records read along.

Each dialect reads and writes its own log (its SQL, its order of delivery); these are
the parts that are the same around that: a streamer's clock and `Retention`
(`RetainedLog`), a sender that buffers its events and writes them in one transaction
on `flush` (`BufferedSender`), and a receiver's records read with its events
(`ReadsRecordsAlong`).
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from actorflow.clock import AdapterClock, Clock
from actorflow.options import duration
from actorflow.record import Record

from .retention import DeleteBatch, Retention

__all__ = ["BufferedSender", "ReadsRecordsAlong", "RetainedLog"]


class RetainedLog:
    """A streamer's clock (it stamps sent events) and the retention of its event log.

    Attributes:
        retention: the retention in seconds (``None``: events are kept).
        retention_job: the background clean-up (`Retention`).
    """

    _clock: AdapterClock
    retention: float | None
    retention_job: Retention

    def _retain(
        self,
        retention: timedelta | float | None,
        *,
        clock: Clock | None,
        delete_batch: DeleteBatch,
        name: str,
        log: logging.Logger,
    ) -> None:
        """Set up the clock (``clock``, else the first workflow's) and the clean-up of events past ``retention``."""
        self._clock = AdapterClock(clock)
        self.retention = None if retention is None else duration("retention", retention, positive=True)
        self.retention_job = Retention(
            self.retention, now=self._clock.now, delete_batch=delete_batch, name=name, log=log
        )

    def use_clock(self, clock: Clock) -> None:
        """Stamp events with the clock of the workflow built on this streamer (unless given one)."""
        self._clock.lend(clock)

    def cleanup(self) -> int:
        """Delete the events older than the retention now (in batches); how many."""
        return self.retention_job.run()


class BufferedSender(abc.ABC):
    """Buffers sends; `flush` writes them in one transaction, and keeps them for the next flush if that fails.

    Sends and flushes may come from several threads: one lock keeps the buffer, and
    the order of the events, whole.
    """

    def __init__(self, topic: str, retention: Retention) -> None:
        self._topic = topic
        self._retention = retention
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []

    @abc.abstractmethod
    def _row(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> tuple[Any, ...]:
        """The log row of an event sent now."""

    @abc.abstractmethod
    def _write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append ``rows`` to the log in one transaction, then wake the topic's receivers."""

    def send(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        row = self._row(run_id, event_type, headers)
        with self._lock:
            self._pending.append(row)

    def flush(self) -> None:
        self._retention.poke()  # a clock read, unless a clean-up is due (run in the background)
        with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                self._write(rows)
            except BaseException:
                self._pending[:0] = rows  # kept for the next flush, in order
                raise

    def close(self) -> None:
        self.flush()


class ReadsRecordsAlong:
    """A receiver that reads each event's record with it (`RecordsAlong`: the record store is in its database).

    The receiver reads them when ``_along`` is set, into ``_records``.
    """

    _along: bool
    _records: dict[str, Record]

    def read_records_along(self) -> None:
        """Read each event's record with it (the record store is in this database)."""
        self._along = True

    def records(self) -> dict[str, Record]:
        """The records read with the last events, by run id (taken)."""
        found, self._records = self._records, {}
        return found
