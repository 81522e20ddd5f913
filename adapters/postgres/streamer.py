"""`PostgresEventStreamer`: the event log as a table, read in transaction-visibility order.

Readers never skip an event that a concurrent transaction commits after a later one: an
event is read only once every transaction older than the oldest one still running has
ended (``xid < pg_snapshot_xmin(pg_current_snapshot())``), and cursors are ordered by
(xid, id). Receivers are woken by LISTEN/NOTIFY and poll only as the fallback; a shard
reads only its own share (``shard_hash % n``); cursors are durable per receiver name.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import psycopg

from actorflow.clock import Clock, SystemClock, to_seconds
from actorflow.event import Event
from actorflow.protocols import ReceiverOptions

from .._sql import decode_headers, encode_headers
from ._db import QUERIES, PostgresAdapter

__all__ = ["PostgresEventStreamer"]

logger = logging.getLogger("actorflow.postgres")

_RETENTION_EVERY = 600.0  # seconds between clean-ups of events past the retention


class PostgresEventStreamer(PostgresAdapter):
    """An event streamer over a PostgreSQL table.

    Args:
        dsn: a libpq connection string or URL.
        schema: the schema the tables live in (created if missing).
        retention: events older than this are deleted (as Kafka's retention: whether or
            not every receiver read them); ``None`` keeps everything.
        clock: stamps events sent through a sender (records' events carry their own time).
        max_connections: the pool's size.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        retention: timedelta | float | None = timedelta(days=7),
        clock: Clock | None = None,
        max_connections: int = 10,
    ) -> None:
        super().__init__(dsn, schema=schema, max_connections=max_connections)
        self.retention = None if retention is None else to_seconds(retention)
        self._clock = clock or SystemClock()
        self._last_cleanup = 0.0

    def new_sender(self, topic: str) -> _Sender:
        """A sender for ``topic`` (events are written on `flush`)."""
        return _Sender(self, topic)

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> _Receiver:
        """A receiver of ``topic`` with its durable cursor kept under ``name``."""
        return _Receiver(self, topic, name, options or ReceiverOptions())

    def cleanup(self) -> int:
        """Delete events older than the retention now; returns how many."""
        if self.retention is None:
            return 0
        cutoff = self._clock.now() - timedelta(seconds=self.retention)
        return self.db.execute("deleting old events", QUERIES["delete_old_events"], (cutoff,))

    def _maybe_cleanup(self) -> None:
        now = time.monotonic()
        if self.retention is not None and now - self._last_cleanup >= _RETENTION_EVERY:
            self._last_cleanup = now
            self.cleanup()


class _Sender:
    def __init__(self, streamer: PostgresEventStreamer, topic: str) -> None:
        self._streamer = streamer
        self._topic = topic
        self._pending: list[tuple[Any, ...]] = []

    def send(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        self._pending.append(
            (
                self._topic,
                run_id,
                int(event_type),
                encode_headers(headers),
                self._streamer._clock.now(),  # noqa: SLF001
                zlib.crc32(run_id.encode()),
            )
        )

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        db = self._streamer.db

        def insert(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(QUERIES["insert_events"], rows)
                db.notify(conn, [f"e:{self._topic}"])

        db.run("sending events", insert)

    def close(self) -> None:
        self.flush()


class _Receiver:
    def __init__(self, streamer: PostgresEventStreamer, topic: str, name: str, options: ReceiverOptions) -> None:
        self._streamer = streamer
        self._db = streamer.db
        self._topic = topic
        self._name = name
        self._options = options
        self._cursor: tuple[str, int] | None = None
        self._delivered: deque[tuple[int, str]] = deque()
        self._key = f"e:{topic}"
        if options.stream_from_latest:
            # "Latest" is the head when the receiver is made, not when it first reads.
            self._cursor = self._start()

    def _start(self) -> tuple[str, int]:
        def read(conn: psycopg.Connection[Any]) -> tuple[str, int]:
            row = conn.execute(QUERIES["read_cursor"], (self._topic, self._name)).fetchone()
            if row is None and self._options.stream_from_latest:
                head = conn.execute(QUERIES["head_cursor"], (self._topic,)).fetchone()
                row = (str(head[0]), int(head[1])) if head else ("0", 0)
                conn.execute(QUERIES["save_cursor"], (self._topic, self._name, row[0], row[1]))
            return (str(row[0]), int(row[1])) if row else ("0", 0)

        return self._db.run("reading a cursor", read)

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        deadline = time.monotonic() + timeout
        listener = self._db.listener()
        if self._cursor is None:
            self._cursor = self._start()
            listener.connected.wait(min(timeout, 1.0))
        poll = max(0.01, self._options.poll_frequency)
        while True:
            seen = listener.version(self._key)
            events = self._read(max_events)
            if events:
                return events
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._streamer._maybe_cleanup()  # noqa: SLF001 - idle time is clean-up time
                return []
            listener.wait(self._key, seen, min(remaining, poll))

    def _read(self, max_events: int) -> list[Event]:
        assert self._cursor is not None  # noqa: S101 - set by receive()
        xid, last_id = self._cursor
        params = {
            "topic": self._topic,
            "xid": xid,
            "id": last_id,
            "count": self._options.shard_count,
            "shard": self._options.shard,
            "limit": max_events,
        }
        rows = self._db.fetchall("reading events", QUERIES["read_events"], params)
        events: list[Event] = []
        for event_id, event_xid, run_id, event_type, headers, created_at in rows:
            self._cursor = (event_xid, event_id)
            self._delivered.append((event_id, event_xid))
            try:
                events.append(Event(event_id, run_id, int(event_type), decode_headers(headers), created_at))
            except (ValueError, TypeError) as exc:
                # Handed over as malformed: the engine reports, counts and acknowledges it.
                events.append(Event(event_id, str(run_id), 0, {}, created_at, malformed=f"unreadable row: {exc}"))
        return events

    def ack(self, event: Event) -> None:
        position = None
        while self._delivered:
            event_id, event_xid = self._delivered.popleft()
            position = (event_xid, event_id)
            if event_id == event.id:
                break
        if position is None:
            return
        self._db.execute("saving a cursor", QUERIES["save_cursor"], (self._topic, self._name, *position))

    def close(self) -> None:
        self._cursor = None
        self._delivered.clear()
