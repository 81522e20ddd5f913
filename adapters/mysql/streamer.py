"""`MysqlEventStreamer`: the event log as an InnoDB table, read in sequence order without ever skipping an event.

**Why a reader never skips an event.** InnoDB has no ``xmin`` to read below (as the
PostgreSQL adapter does): a plain ``id > cursor`` read would skip an event whose
transaction took a lower AUTO_INCREMENT id but committed after a higher one was seen.
So events are numbered differently. Every transaction that writes events reserves their
sequence numbers by updating one row,
``UPDATE workflow_event_sequence SET value = LAST_INSERT_ID(value + n)``, as its *last*
statement before inserting them and committing. That row stays exclusively locked until
the transaction ends, so the writers of events pass it one at a time, in the order of
the numbers they reserve: a writer can reserve numbers only after every writer of lower
numbers has committed (or rolled back, and its numbers are reserved again by the next).
InnoDB makes a committing transaction visible to new snapshots before it releases its
locks (MariaDB's ``trx_commit_in_memory`` takes it out of the active set first), so by
the time any reader can see sequence number ``n``, every number below ``n`` is visible
or was never used. A reader reading ``WHERE topic = ? AND seq > cursor ORDER BY seq``
(each statement its own READ COMMITTED snapshot) therefore never sees a later number
before an earlier one commits. The price: writers of events serialise on that row for
the few statements between the reservation and the commit (never for their other work:
record writes come before it).

**Wake-ups.** MySQL has no LISTEN. A write made by this process wakes its receivers at
once (an in-process condition, ``_wakeups.py``); writes of other processes are found by
polling, which backs off from 10 ms up to the receiver's ``poll_frequency`` while the
topic stays quiet. A shard reads only its share (``shard_hash % n``); cursors are
durable per (topic, receiver name).

Events older than the retention are deleted (as Kafka's retention, whether or not every
receiver read them) by a background thread that the streamer's traffic starts every ten
minutes, a bounded batch per transaction (see `actorflow.adapters._sql.Retention`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from actorflow.capabilities import CursorMove
from actorflow.clock import Clock
from actorflow.event import Event
from actorflow.protocols import Fence, ReceiverOptions
from actorflow.record import Record

from .._sql import DEFAULT_RETENTION, Retention, event_from_row, event_row, records_by_run
from .._sql.fleet import stale_term
from .._sql.streaming import BufferedSender, ReadsRecordsAlong, RetainedLog
from ._db import QUERIES, Database, MysqlAdapter, from_db, insert_events, logger, to_db, transaction

__all__ = ["MysqlEventStreamer"]

_FIRST_POLL = 0.01  # seconds before looking again after a read found nothing; doubles up to poll_frequency


class MysqlEventStreamer(MysqlAdapter, RetainedLog):
    """An event streamer over a MySQL/MariaDB table, read in commit order (see the module's notes).

    Senders buffer and insert their events in one transaction on `flush`. Receivers keep
    their cursor per (topic, receiver name) in the database, so a receiver re-created
    under the same name, in this process or after a restart, resumes after its last ack.

    Args:
        dsn: ``mysql://user[:password]@host[:port]/database``.
        retention: events older than this are deleted (as Kafka's retention: whether or
            not every receiver read them); ``None`` keeps everything.
        clock: stamps events sent through a sender (records' events carry their own time);
            by default the clock of the first workflow built on this streamer.
        max_connections: the pool's size.

    Attributes:
        retention: the retention in seconds (``None``: events are kept).
        retention_job: the background clean-up (`actorflow.adapters._sql.Retention`);
            its ``batch`` and ``every`` may be tuned, and `cleanup` runs it at once.
    """

    def __init__(
        self,
        dsn: str,
        *,
        retention: timedelta | float | None = DEFAULT_RETENTION,
        clock: Clock | None = None,
        max_connections: int = 10,
    ) -> None:
        super().__init__(dsn, max_connections=max_connections)
        self._retain(
            retention,
            clock=clock,
            delete_batch=self._delete_old_events,
            name=f"mysql-{self.db.settings.database}",
            log=logger,
        )
        self.db.on_close(self.retention_job.stop)

    def new_sender(self, topic: str) -> _Sender:
        """A sender for ``topic`` (events are written on `flush`)."""
        return _Sender(self.db, topic, now=self._clock.now, retention=self.retention_job)

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> _Receiver:
        """A receiver of ``topic`` with its durable cursor kept under ``name``."""
        return _Receiver(
            self.db, topic, name, options or ReceiverOptions(), now=self._clock.now, retention=self.retention_job
        )

    def _delete_old_events(self, cutoff: datetime, limit: int) -> int:
        return self.db.execute("deleting old events", QUERIES["delete_old_events"], (to_db(cutoff), limit))


class _Sender(BufferedSender):
    """Buffers sends; `flush` writes them in one transaction and wakes this process's receivers."""

    def __init__(self, db: Database, topic: str, *, now: Callable[[], datetime], retention: Retention) -> None:
        super().__init__(topic, retention)
        self._db = db
        self._now = now

    def _row(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> tuple[Any, ...]:
        return event_row(self._topic, run_id, event_type, headers, to_db(self._now()))

    def _write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        def insert(conn: Any) -> None:
            with transaction(conn) as cur:
                insert_events(cur, rows)

        self._db.run("sending events", insert)
        self._db.wakeups.bump((f"e:{self._topic}",))


class _Receiver(ReadsRecordsAlong):
    """Reads one topic (one shard of it) after its cursor; acks move the durable cursor."""

    def __init__(
        self,
        db: Database,
        topic: str,
        name: str,
        options: ReceiverOptions,
        *,
        now: Callable[[], datetime],
        retention: Retention,
    ) -> None:
        self._db = db
        self._now = now
        self._retention = retention
        self._topic = topic
        self._name = name
        self._options = options
        self._key = f"e:{topic}"
        self._cursor: int | None = None
        self._closed = False
        self._interrupted = False  # interrupt(): the current or next wait returns
        self._along = False  # read each event's record with it (read_records_along)
        self._records: dict[str, Record] = {}
        self._backoff = _FIRST_POLL
        # The wake-up counter and the time of the last read that found all there was (fewer
        # events than asked): until this process writes to the topic or the back-off passes,
        # a new read could find only other processes' events, which are polled for anyway.
        # So a receive called right after a step (its event was handed over) does not read
        # the log copy at once: copies are read a batch at a time.
        self._quiet: tuple[int, float] | None = None
        self._where = f"MySQL database {db.settings.database}"
        if options.stream_from_latest:
            # "Latest" is the head when the receiver is made, not when it first reads.
            self._cursor = self._start()

    def _start(self) -> int:
        def read(conn: Any) -> int:
            with conn.cursor() as cur:
                cur.execute(QUERIES["read_cursor"], (self._topic, self._name))
                row = cur.fetchone()
                if row is None and self._options.stream_from_latest:
                    cur.execute(QUERIES["head_cursor"], (self._topic,))
                    head = int(cur.fetchone()[0])
                    cur.execute(QUERIES["save_cursor"], (self._topic, self._name, head))
                    return head
                return int(row[0]) if row else 0

        return self._db.run("reading a cursor", read)

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        deadline = time.monotonic() + timeout
        self._retention.poke()  # a clock read, unless a clean-up is due (run in the background)
        wakeups = self._db.wakeups
        poll = max(0.01, self._options.poll_frequency)
        if self._cursor is None:
            self._cursor = self._start()
        if self._quiet is not None and not self._quiet_wait(deadline):
            self._interrupted = False
            return []
        while not self._closed and max_events > 0:
            seen = wakeups.counter(self._key)  # before reading: a commit after the read still wakes us
            events = self._read(max_events)
            self._quiet = (seen, time.monotonic()) if len(events) < max_events else None
            if events:
                self._backoff = _FIRST_POLL
                return events
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._interrupted:
                break
            if wakeups.wait(self._key, seen, min(remaining, self._backoff, poll), self._stopped):
                self._backoff = _FIRST_POLL  # a write of this process: read at once, and soon again
            else:
                self._backoff = min(self._backoff * 2, poll)
            if self._interrupted:
                break  # woken to return (an event handed over, an interrupt): no read first
        self._interrupted = False
        return []

    def _quiet_wait(self, deadline: float) -> bool:
        """After a read that found all there was: wait for this process's write or the back-off.

        False when the receive is to return empty instead of reading (its time is up, or it was woken to).
        """
        assert self._quiet is not None  # noqa: S101 - checked by the caller
        seen, at = self._quiet
        wakeups = self._db.wakeups
        wait = at + self._backoff - time.monotonic()
        if wait <= 0 or wakeups.counter(self._key) != seen:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self._interrupted:
            return False
        moved = wakeups.wait(self._key, seen, min(remaining, wait), self._stopped)
        return not self._interrupted and not self._closed and (moved or time.monotonic() >= at + self._backoff)

    def _stopped(self) -> bool:
        return self._closed or self._interrupted

    def interrupt(self) -> None:
        """Make the current or next waiting `receive` return soon (`InterruptibleReceiver`)."""
        self._interrupted = True
        self._db.wakeups.wake()

    def wake(self) -> None:
        """Make the current or next waiting `receive` return soon (`WakeableReceiver`): an event was handed over.

        Only the waiters of this receiver's topic are woken, and only this one returns.
        """
        self._interrupted = True
        self._db.wakeups.nudge(self._key)

    def look_again(self) -> None:
        """Make the next `receive` read the log at once, whatever was written since the last read (`QuietReceiver`)."""
        self._quiet = None

    def _read(self, limit: int) -> list[Event]:
        """Up to ``limit`` events of the share after the cursor (moved past them)."""
        cursor = self._cursor or 0
        params = {
            "topic": self._topic,
            "seq": cursor,
            "count": self._options.shard_count,
            "shard": self._options.shard,
            "limit": limit,
        }
        along = self._along
        rows = self._db.fetchall("reading events", QUERIES["read_events_along" if along else "read_events"], params)
        if along:
            self._records = records_by_run((row[5:] for row in rows if row[5] is not None), from_db, where=self._where)
        events: list[Event] = []
        for row in rows:
            cursor = max(cursor, int(row[0]))
            # An unreadable row is handed over as malformed: the engine reports, counts and acknowledges it.
            events.append(event_from_row(row[:5], from_db, now=self._now, where=self._where))
        self._cursor = cursor
        return events

    def cursor_move(self, event: Event) -> CursorMove:
        """The acknowledgement up to ``event`` for the record store's commit (`CommitAcks`)."""
        return CursorMove(self._topic, self._name, (int(event.id),))

    def ack(self, event: Event) -> None:
        self._db.execute("saving a cursor", QUERIES["save_cursor"], (self._topic, self._name, int(event.id)))

    def ack_fenced(self, event: Event, fence: Fence) -> None:
        """As `ack`, in the statement that checks ``fence``: `StaleTerm`, and no move, unless it is current."""
        params = {
            "role": fence.role,
            "node": fence.node_id,
            "term": fence.term,
            "topic": self._topic,
            "name": self._name,
            "seq": int(event.id),
        }
        if self._db.execute("saving a cursor", QUERIES["save_cursor_fenced"], params) == 0:
            raise stale_term(fence)

    def close(self) -> None:
        self._closed = True
        self._cursor = None
        self._quiet = None
        self._db.wakeups.wake()  # a receive blocked in another thread returns
