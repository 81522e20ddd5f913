"""`PostgresEventStreamer`: the event log as a table, read in transaction-visibility order.

Readers never skip an event that a concurrent transaction commits after a later one: an
event is read only once every transaction older than the oldest one still running has
ended (``xid < pg_snapshot_xmin(pg_current_snapshot())``), and cursors are ordered by
(xid, id). Receivers are woken by LISTEN/NOTIFY and poll only as the fallback; a shard
reads only its own share (``shard_hash % n``); cursors are durable per receiver name.

The cost of that order: a transaction left open on the cluster (with a transaction id,
i.e. one that wrote something) holds back every event committed after it began. While
events are held, a reader reads the rest below a refined cut that leaves out the
transactions that never touched this schema (the lock table says so, see
``events_cut_refined``), so only one that did (any writer here) holds them until it
ends. Its end notifies nobody, so a reader that finds committed events held back this
way looks again after 10 ms, then at growing intervals up to its ``poll_frequency``;
after 10 s it logs a warning (once a minute) naming the session whose transaction holds
delivery. Keep this schema's transactions short (``idle_in_transaction_session_timeout``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from actorflow.capabilities import CursorMove
from actorflow.clock import Clock
from actorflow.event import Event, shard_hash
from actorflow.protocols import Fence, ReceiverOptions
from actorflow.record import Record

from .._sql import DEFAULT_RETENTION, Retention, event_from_row, event_row, records_by_run
from .._sql.fleet import stale_term
from .._sql.streaming import ReadsRecordsAlong, RetainedLog
from ._db import Database, PostgresAdapter
from ._errors import PostgresError, logger
from ._schema import QUERIES
from .listener import event_notice, shard_key

__all__ = ["PostgresEventStreamer"]

_HELD_FIRST_RETRY = 0.01  # seconds before looking again when older transactions hold events back
# At most this long between looks while events stay held back: under load, one short
# transaction after another holds them (each ending without a notice for this shard).
_HELD_LONGEST_RETRY = 0.05
_HELD_WARN_AFTER = 10.0  # seconds of held-back delivery before a warning
_HELD_WARN_EVERY = 60.0  # at most one such warning per receiver this often


class PostgresEventStreamer(PostgresAdapter, RetainedLog):
    """An event streamer over a PostgreSQL table.

    Events are delivered in commit-visibility order, so a transaction left open on this
    schema delays delivery until it ends (see the module's notes); one of another schema
    or database does not.

    Args:
        dsn: a libpq connection string or URL.
        schema: the schema the tables live in (created if missing).
        retention: events older than this are deleted (as Kafka's retention: whether or
            not every receiver read them); ``None`` keeps everything. A background
            thread does it every ten minutes, a bounded batch per transaction, whether
            the receivers are busy or idle.
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
        schema: str = "public",
        retention: timedelta | float | None = DEFAULT_RETENTION,
        clock: Clock | None = None,
        max_connections: int = 10,
    ) -> None:
        super().__init__(dsn, schema=schema, max_connections=max_connections)
        self._retain(
            retention,
            clock=clock,
            delete_batch=self._delete_old_events,
            name=f"postgres-{self.db.schema}",
            log=logger,
        )
        self.db.on_close(self.retention_job.halt, then=lambda: self.retention_job.join(2.0))

    def new_sender(self, topic: str) -> _Sender:
        """A sender for ``topic`` (events are written on `flush`)."""
        return _Sender(self.db, topic, now=self._clock.now, retention=self.retention_job)

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> _Receiver:
        """A receiver of ``topic`` with its durable cursor kept under ``name``."""
        return _Receiver(
            self.db, topic, name, options or ReceiverOptions(), now=self._clock.now, retention=self.retention_job
        )

    def _delete_old_events(self, cutoff: datetime, limit: int) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                # Never queue behind a table lock (a migration, VACUUM FULL) for long: the
                # clean-up must end soon when the streamer closes; the next one tries again.
                conn.execute(QUERIES["set_delete_lock_timeout"])
                return conn.execute(QUERIES["delete_old_events"], (cutoff, limit)).rowcount

        return self.db.run("deleting old events", work)


class _Sender:
    def __init__(self, db: Database, topic: str, *, now: Callable[[], datetime], retention: Retention) -> None:
        self._db = db
        self._topic = topic
        self._now = now
        self._retention = retention
        self._pending: list[tuple[Any, ...]] = []
        self._run_ids: list[str] = []

    def send(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        self._pending.append(event_row(self._topic, run_id, event_type, headers, self._now()))
        self._run_ids.append(run_id)

    def flush(self) -> None:
        self._retention.poke()  # a clock read, unless a clean-up is due
        if not self._pending:
            return
        rows, self._pending, run_ids = self._pending, [], self._run_ids
        self._run_ids = []
        db = self._db
        notice = event_notice(f"e:{self._topic}", map(shard_hash, run_ids))

        def insert(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(QUERIES["insert_events"], rows)
                db.notify(conn, [notice])

        db.run("sending events", insert)

    def close(self) -> None:
        self.flush()


class _Receiver(ReadsRecordsAlong):
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
        self._cursor: tuple[str, int] | None = None
        self._delivered: deque[tuple[int, str]] = deque()
        self._along = False  # read each event's record with it (read_records_along)
        self._records: dict[str, Record] = {}
        self._interrupted = False  # interrupt(): the current or next wait returns
        # What the receiver waits on: its own shard's notices when sharded (see Listener).
        self._topic_key = f"e:{topic}"
        count = options.shard_count
        self._key = shard_key(self._topic_key, options.shard, count) if count > 1 else self._topic_key
        self._watched: object = None  # the listener told of this shard key (a reopened database has a new one)
        self._where = f"schema {self._db.schema}"
        self._held_since: float | None = None  # since when committed events wait behind the xmin cut
        self._held_retry = _HELD_FIRST_RETRY
        self._held_warned = float("-inf")
        # The listener's version and the time of the last read that found all there was
        # (fewer events than asked, nothing held back): until a notification moves the
        # version or ``poll`` passes, reading again could find nothing new. An idle shard
        # reads once a poll, not once a tick, and a busy one does not read again for nothing.
        self._quiet: tuple[int, float] | None = None
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
        self._retention.poke()  # a clock read, unless a clean-up is due
        listener = self._db.listener()
        if self._key != self._topic_key and self._watched is not listener:
            listener.watch_shards(self._topic_key, self._options.shard_count)  # before taking its version
            self._watched = listener
        if self._cursor is None:
            self._cursor = self._start()
            listener.connected.wait(min(timeout, 1.0))
        poll = max(0.01, self._options.poll_frequency)
        while True:
            seen = listener.version(self._key)
            quiet = self._quiet
            if quiet is not None and quiet[0] == seen and listener.connected.is_set():
                wait = quiet[1] + poll - time.monotonic()
                if wait > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._interrupted:
                        self._interrupted = False
                        return []
                    listener.wait(self._key, seen, min(remaining, wait), self._is_interrupted)
                    continue
            events, held = self._read(max_events)
            # Quiet after a read that found everything there was (fewer than asked, none
            # held back): until a notice moves the version, a new read would find nothing.
            self._quiet = None if held or len(events) >= max_events else (seen, time.monotonic())
            if events or not held:
                self._held_since = None
            if events:
                return events
            wait = self._held(poll) if held else poll
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._interrupted:
                self._interrupted = False
                return []
            listener.wait(self._key, seen, min(remaining, wait), self._is_interrupted)

    def _is_interrupted(self) -> bool:
        return self._interrupted

    def interrupt(self) -> None:
        """Make the current or next waiting `receive` return soon (`InterruptibleReceiver`)."""
        self._interrupted = True
        self._db.listener().wake()

    def look_again(self) -> None:
        """Make the next `receive` read, even with no notification since the last read (`QuietReceiver`)."""
        self._quiet = None

    def wake(self) -> None:
        """Make the current or next waiting `receive` return soon (`WakeableReceiver`): an event was handed over.

        Only this receiver's waiters are woken, and nothing is read for it.
        """
        self._interrupted = True
        self._db.listener().nudge(self._key)

    def _held(self, poll: float) -> float:
        """Committed events wait behind an older open transaction: how long until looking again.

        Its end sends no notification (unless it wrote events of this topic), so waiting
        for one would mean waiting a whole ``poll``: look again after 10 ms, then at
        doubling intervals up to 50 ms (``poll`` if shorter) while it stays open.
        """
        now = time.monotonic()
        if self._held_since is None:
            self._held_since, self._held_retry = now, _HELD_FIRST_RETRY
        else:
            self._held_retry = min(self._held_retry * 2, poll, _HELD_LONGEST_RETRY)
        if now - self._held_since >= _HELD_WARN_AFTER and now - self._held_warned >= _HELD_WARN_EVERY:
            self._held_warned = now
            self._warn_held(now - self._held_since)
        return min(self._held_retry, poll)

    def _warn_held(self, seconds: float) -> None:
        """Say what holds delivery back (best effort: the session may be gone, or not visible to us)."""
        try:
            row = self._db.fetchone("finding the oldest open transaction", QUERIES["oldest_transaction"])
        except PostgresError:
            row = None
        if row is None:
            blocker = "no session found (a prepared transaction? see pg_prepared_xacts)"
        else:
            pid, state, xact_start, query_start, application, database = row
            blocker = (
                f"the oldest is pid {pid} ({state or 'state unknown'}, application {application!r}, "
                f"database {database!r}, transaction started {xact_start}, query started {query_start})"
            )
        logger.warning(
            "%s: events of topic %r have waited %.0fs behind transactions still open on the server; %s. "
            "Delivery resumes when it ends: keep transactions short, or set idle_in_transaction_session_timeout",
            self._name,
            self._topic,
            seconds,
            blocker,
        )

    def _read(self, max_events: int) -> tuple[list[Event], bool]:
        """The next events of the share, and whether committed events wait behind the cut.

        The fast path reads below the server-wide xmin cut. Only when its marker says
        committed events wait beyond it (and the batch is not full) is the rest read below
        the refined cut, which ignores the transactions that never touched this schema:
        they cannot write here.
        """
        events, held = self._fetch(max_events, refined=False)
        if held and len(events) < max_events:
            more, held = self._fetch(max_events - len(events), refined=True)
            events.extend(more)
        return events, held

    def _fetch(self, limit: int, *, refined: bool) -> tuple[list[Event], bool]:
        """Up to ``limit`` events after the cursor (moved past them), and whether the marker row came."""
        assert self._cursor is not None  # noqa: S101 - set by receive()
        xid, last_id = self._cursor
        params = {
            "topic": self._topic,
            "xid": xid,
            "id": last_id,
            "count": self._options.shard_count,
            "shard": self._options.shard,
            "limit": limit,
        }
        along = self._along
        query = ("read_events_along" if along else "read_events") + ("_refined" if refined else "")
        rows = self._db.fetchall("reading events", QUERIES[query], params)
        events: list[Event] = []
        held = False
        now = self._now
        if along:
            self._records.update(records_by_run((row[6:] for row in rows if row[8] is not None), where=self._where))
        for event_id, event_xid, run_id, event_type, headers, created_at, *_ in rows:
            if run_id is None:  # the marker: the first committed event beyond the cut
                held = True
                continue
            self._cursor = (event_xid, event_id)
            self._delivered.append((event_id, event_xid))
            # An unreadable row is handed over as malformed: the engine reports, counts and acknowledges it.
            events.append(
                event_from_row((event_id, run_id, event_type, headers, created_at), now=now, where=self._where)
            )
        return events, held

    def _acked(self, event: Event) -> tuple[str, int] | None:
        """The cursor position that acknowledges ``event`` (and every event delivered before it)."""
        position = None
        while self._delivered:
            event_id, event_xid = self._delivered.popleft()
            position = (event_xid, event_id)
            if event_id == event.id:
                break
        return position

    def cursor_move(self, event: Event) -> CursorMove | None:
        """The acknowledgement up to ``event`` for the record store's commit (`CommitAcks`)."""
        position = self._acked(event)
        return None if position is None else CursorMove(self._topic, self._name, position)

    def ack(self, event: Event) -> None:
        position = self._acked(event)
        if position is not None:
            self._db.execute("saving a cursor", QUERIES["save_cursor"], (self._topic, self._name, *position))

    def ack_fenced(self, event: Event, fence: Fence) -> None:
        """As `ack`, in the statement that checks ``fence``: `StaleTerm`, and no move, unless it is current."""
        position = self._acked(event)
        if position is None:
            return
        params = {
            "role": fence.role,
            "node": fence.node_id,
            "term": fence.term,
            "topic": self._topic,
            "name": self._name,
            "xid": position[0],
            "id": position[1],
        }
        row = self._db.fetchone("saving a cursor", QUERIES["save_cursor_fenced"], params)
        if not (row and row[0]):
            raise stale_term(fence)

    def close(self) -> None:
        self._cursor = None
        self._quiet = None
        self._delivered.clear()
