"""`SqliteEventStreamer`: an event log in a SQLite file, with durable cursors and instant wake-ups.

Why no event is ever skipped, although a receiver reads ``id > cursor``: SQLite lets
one writer at a time into a file (every write here is a ``BEGIN IMMEDIATE``
transaction), and ``AUTOINCREMENT`` ids are assigned inside that transaction. So ids
become visible in commit order: when a reader sees id ``n``, every id below ``n`` is
already committed (or rolled back and never used), and no later commit can add one.
The naive "id > cursor" read, unsafe on PostgreSQL where transactions commit out of
id order, is exact here.

Events older than the retention are deleted (as Kafka's retention, whether or not every
receiver read them) by a background thread that the streamer's traffic starts every ten
minutes, a bounded batch per transaction (see `actorflow.adapters._sql.Retention`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from actorflow.capabilities import CursorMove
from actorflow.clock import AdapterClock, Clock
from actorflow.event import Event
from actorflow.protocols import Fence, ReceiverOptions
from actorflow.record import Record

from .._sql import DEFAULT_RETENTION, Retention, event_from_row, event_row, records_by_run
from .._sql.streaming import BufferedSender, ReadsRecordsAlong, RetainedLog
from ._db import FILE_MODE, Database, SqliteAdapter, check_fence, events_key, from_micros, logger, to_micros

__all__ = ["SqliteEventStreamer"]

EventRow = tuple[str, str, int, str, int, int]


class SqliteEventStreamer(SqliteAdapter, RetainedLog):
    """An event streamer whose topics are rows of one SQLite file.

    Senders buffer and insert their events in one transaction on `flush`. Receivers keep
    their cursor per (topic, receiver name) in the file, so a receiver re-created under
    the same name, in this process or after a restart, resumes after its last ack. A
    receiver with nothing to read waits on the file's in-process wake-up, notified after
    every commit that wrote events (by senders and by a `SqliteRecordStore` publishing
    directly), and looks at the table every ``poll_frequency`` for other processes'
    writes: it returns as soon as an event lands and never busy-polls. A shard reads
    only its share (``crc32(run_id) % shard_count``), filtered in SQL.

    Constructing the streamer opens nothing; connections open on first use, one per thread.

    Args:
        path: the database file (shared with `SqliteRecordStore` and
            `SqliteTimeoutStore`); its directory must exist.
        clock: stamps ``created_at`` on sent events; by default the clock of the first
            workflow built on this streamer.
        retention: events older than this (by their ``created_at``) are deleted, whether
            or not every receiver read them; ``None`` keeps everything.
        synchronous: SQLite's ``synchronous`` setting; ``"FULL"`` (the default) is
            crash-safe, see `SqliteRecordStore`.
        busy_timeout: seconds to wait for the write lock held by another process or thread.
        file_mode: the permissions of a database file this adapter creates (default 0o600,
            owner only; ``None``: SQLite's default under the umask); an existing file keeps its own.

    Attributes:
        retention: the retention in seconds (``None``: events are kept).
        retention_job: the background clean-up (`actorflow.adapters._sql.Retention`);
            its ``batch`` and ``every`` may be tuned, and `cleanup` runs it at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        retention: timedelta | float | None = DEFAULT_RETENTION,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        file_mode: int | None = FILE_MODE,
    ) -> None:
        super().__init__(path, synchronous=synchronous, busy_timeout=busy_timeout, file_mode=file_mode)
        self._retain(retention, clock=clock, delete_batch=self._delete_old_events, name=self.path, log=logger)
        self._log = _EventLog(self.db, self._clock)

    def close(self) -> None:
        """Stop a running clean-up, then close every connection (reopened if used again)."""
        self.retention_job.stop()
        super().close()

    def attach(self) -> None:
        """A supervisor starts using this streamer (the file is opened on first use)."""

    def detach(self) -> None:
        """A supervisor stopped: end a running clean-up, so no thread of ours outlives it."""
        self.retention_job.stop()

    def new_sender(self, topic: str) -> _Sender:
        """A sender for ``topic``; its events are written on `flush` (or `close`)."""
        return _Sender(self._log, self.retention_job, topic)

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> _Receiver:
        """A receiver of ``topic`` resuming after the last event acknowledged under ``name``."""
        opts = options or ReceiverOptions()
        return _Receiver(self._log, self.retention_job, topic, name, self._log.start(topic, name, opts), opts)

    def _delete_old_events(self, cutoff: datetime, limit: int) -> int:
        return self._log.delete_old_events(cutoff, limit)


class _EventLog:
    """The event log's reads and writes, for the streamer, its senders and its receivers."""

    def __init__(self, db: Database, clock: AdapterClock) -> None:
        self.db = db
        self._q = db.queries
        self._clock = clock

    def start(self, topic: str, name: str, options: ReceiverOptions) -> int:
        """Where a receiver called ``name`` starts: its cursor (made at the head for ``stream_from_latest``)."""
        if options.stream_from_latest:
            self.db.write(lambda conn: conn.execute(self._q["start_cursor_at_head"], (topic, name, topic)).close())
        rows = self.db.fetch(self._q["select_cursor"], (topic, name))
        return int(rows[0][0]) if rows else 0

    def row(self, topic: str, run_id: str, event_type: int, headers: Mapping[str, str]) -> EventRow:
        """The row of an event sent now."""
        return event_row(topic, run_id, event_type, headers, to_micros(self._clock.now()))

    def insert(self, topic: str, rows: Sequence[EventRow]) -> None:
        """Append ``rows`` to the log in one transaction, then wake the topic's receivers."""
        self.db.write(lambda conn: conn.executemany(self._q["insert_event"], rows).close())
        self.db.hub.bump((events_key(topic),))

    def ack(self, topic: str, name: str, event_id: int, fence: Fence | None = None) -> None:
        """Move the cursor of (topic, name) forward to ``event_id``; with ``fence``, only if it is current."""

        def save(conn: sqlite3.Connection) -> None:
            if fence is not None:
                check_fence(conn, self._q, fence)
            conn.execute(self._q["ack_cursor"], (topic, name, event_id)).close()

        # Not synced: a cursor lost to a power cut only delivers events again, which every
        # consumer absorbs (at-least-once); this halves the syncs of a transition.
        self.db.write(save, sync=False)

    def read(self, topic: str, position: int, max_events: int, options: ReceiverOptions) -> tuple[list[Event], int]:
        """The next events of the receiver's share after ``position``, and the new position.

        A shard's position moves past the other shards' events too: when fewer rows than
        asked come back, every event of the topic up to its last one (read in the same
        snapshot) has been looked at.
        """
        count = options.shard_count
        if count > 1:
            with self.db.snapshot() as conn:
                rows = conn.execute(
                    self._q["receive_shard_events"], (topic, position, count, options.shard, max_events)
                ).fetchall()
                if len(rows) < max_events:
                    position = max(position, conn.execute(self._q["topic_head"], (topic,)).fetchone()[0])
        else:
            rows = self.db.fetch(self._q["receive_events"], (topic, position, max_events))
        events: list[Event] = []
        for row in rows:
            position = max(position, row[0])
            # An unreadable row becomes a malformed event (see `event_from_row`).
            events.append(event_from_row(row, from_micros, now=self._clock.now, where=self.db.path))
        return events, position

    def records(self, run_ids: list[str]) -> dict[str, Record]:
        """The current records of ``run_ids`` (the record store's table in this file; unreadable ones left out)."""
        wanted = json.dumps(list(dict.fromkeys(run_ids)))
        return records_by_run(self.db.fetch(self._q["lookup_records"], (wanted,)), from_micros, where=self.db.path)

    def delete_old_events(self, cutoff: datetime, limit: int) -> int:
        """Delete at most ``limit`` events created before ``cutoff``, oldest first; how many."""
        query, before = self._q["delete_old_events"], to_micros(cutoff)

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(query, (before, limit)).rowcount

        deleted: int = self.db.write(work)
        return deleted


class _Sender(BufferedSender):
    """Buffers sends; `flush` writes them in one transaction and wakes the receivers."""

    def __init__(self, log: _EventLog, retention: Retention, topic: str) -> None:
        super().__init__(topic, retention)
        self._log = log

    def _row(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> EventRow:
        return self._log.row(self._topic, run_id, event_type, headers)

    def _write(self, rows: Sequence[EventRow]) -> None:
        self._log.insert(self._topic, rows)


class _Receiver(ReadsRecordsAlong):
    """Reads one topic (one shard of it) after a position; acks move the durable cursor."""

    def __init__(
        self, log: _EventLog, retention: Retention, topic: str, name: str, position: int, options: ReceiverOptions
    ) -> None:
        self._log = log
        self._retention = retention
        self._topic = topic
        self._name = name
        self._position = position
        self._options = options
        self._closed = False
        self._interrupted = False  # interrupt(): the current or next wait returns
        self._along = False  # read each event's record with it (read_records_along)
        self._records: dict[str, Record] = {}

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        hub = self._log.db.hub
        key = events_key(self._topic)
        poll = max(self._options.poll_frequency, 0.01)
        deadline = time.monotonic() + timeout
        self._retention.poke()  # a clock read, unless a clean-up is due (run in the background)
        while not self._closed and max_events > 0:
            seen = hub.counter(key)  # before reading: a commit after the read still wakes us
            before = self._position
            events, self._position = self._log.read(self._topic, before, max_events, self._options)
            if events:
                if self._along:
                    self._records = self._log.records([event.run_id for event in events if not event.malformed])
                return events
            if self._position != before:
                continue  # only other shards' events: look further at once
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._interrupted:
                break
            hub.wait(key, seen, min(remaining, poll), lambda: self._closed or self._interrupted)
        self._interrupted = False
        return []

    def interrupt(self) -> None:
        """Make the current or next waiting `receive` return soon (`InterruptibleReceiver`)."""
        self._interrupted = True
        self._log.db.hub.wake()

    def ack(self, event: Event) -> None:
        self._log.ack(self._topic, self._name, event.id)

    def cursor_move(self, event: Event) -> CursorMove:
        """The acknowledgement up to ``event`` for the record store's commit (`CommitAcks`)."""
        return CursorMove(self._topic, self._name, (event.id,))

    def ack_fenced(self, event: Event, fence: Fence) -> None:
        """As `ack`, in one transaction with the check of ``fence``: `StaleTerm`, and no move, unless current."""
        self._log.ack(self._topic, self._name, event.id, fence)

    def close(self) -> None:
        self._closed = True
        self._log.db.hub.wake()  # a receive blocked in another thread returns
