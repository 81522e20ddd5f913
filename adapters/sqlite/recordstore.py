"""`SqliteRecordStore`: records, their events, every stored version and error counts in one file."""

from __future__ import annotations

import builtins
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from actorflow.capabilities import CursorMove, RecordPage, RunCount
from actorflow.errors import RecordNotFound, VersionConflict, WorkflowInProgress
from actorflow.event import Header, OutboxEvent, event_topic, shard_hash
from actorflow.protocols import EventStreamer, Fence, Order, RecordFilter
from actorflow.record import Record, foreign_id_refusal, store_checked
from actorflow.runstate import RunState
from actorflow.topics import topic_prefix

from .._sql import (
    RECORD_COLUMNS,
    count_rows,
    decode_run_ids,
    filter_clause,
    outbox_from_rows,
    outbox_row,
    page_clause,
    page_from_rows,
    read_record,
    readable_records,
    record_event_row,
    record_params,
    records_by_run,
    sort_direction,
    update_params,
)
from .._sql.stretches import stretches
from ._db import FILE_MODE, SqliteAdapter, check_fence, events_key, from_micros, logger, outbox_key, to_micros
from ._schema import queries
from .streamer import SqliteEventStreamer

__all__ = ["SqliteRecordStore"]

# How often wait_for_outbox looks at the table for rows written by other processes
# (writes of this process wake it at once).
_OUTBOX_POLL = 0.25

# UPDATE ... FROM, which a group's update is, came with SQLite 3.33; older libraries store one by one.
_GROUPS = sqlite3.sqlite_version_info >= (3, 33, 0)

# The columns of a group's rows (see update_records): the record's.
_GROUP_COLUMNS = len(RECORD_COLUMNS)

# The most rows one statement of a group takes (its parameters stay far under SQLite's limit,
# 32766 since 3.32). A chunk is padded up to a power of two, so a few statement texts serve
# every size and a group takes one chunk, three statements, unless it is larger.
_LARGEST_CHUNK = 512

# The event's headers as event_headers() makes them, from the columns of insert_record_events' v
# (key order: encode_headers sorts).
_HEADERS = {
    Header.WORKFLOW_NAME: "workflow_name",
    Header.FOREIGN_ID: "foreign_id",
    Header.TOPIC: "topic",
    Header.RUN_ID: "run_id",
    Header.RUN_STATE: "CAST(run_state AS TEXT)",
    Header.RECORD_VERSION: "CAST(version AS TEXT)",
}


def _chunk_size(count: int) -> int:
    """The size of the chunk that takes ``count`` rows: the next power of two (2 at least)."""
    return max(2, 1 << (count - 1).bit_length())


@functools.cache
def _update_statement(size: int) -> str:
    """The update of a chunk of ``size`` records (made once per size)."""
    row = "(" + ", ".join(["?"] * _GROUP_COLUMNS) + ")"
    return queries()["update_records"].format(values=", ".join([row] * size))


@functools.cache
def _events_statement() -> str:
    """The statement of a group's events, its headers spelled from `Header`."""
    headers = ", ".join(f"'{key}', {column}" for key, column in sorted(_HEADERS.items()))
    return queries()["insert_record_events"].format(headers=headers)


class _Group:
    """Next versions of distinct runs, published directly, to store together (`SqliteRecordStore._apply_group`).

    Its statements' parameters are made here, before the transaction: the other writers
    wait for it, and Python work inside it competes with every thread for the GIL.
    """

    __slots__ = ("chunks", "events", "keys", "records", "run_ids")

    def __init__(self, records: builtins.list[Record]) -> None:
        self.records = records
        self.keys: set[str] = set()  # the Hub keys of the events' topics
        self.chunks: list[tuple[int, tuple[Any, ...]]] = []  # (rows, update parameters) of each chunk
        self.run_ids: list[str] = []  # each chunk's, as JSON arrays
        self.events: list[str] = []  # each chunk's [run id, topic, shard hash], as JSON arrays
        keys = self.keys
        for start in range(0, len(records), _LARGEST_CHUNK):
            chunk = records[start : start + _LARGEST_CHUNK]
            rows: list[Any] = []
            events: list[tuple[str, str, int]] = []
            for record in chunk:
                topic = event_topic(record)
                keys.add(events_key(topic))
                rows += record_params(record, to_micros)
                events.append((record.run_id, topic, shard_hash(record.run_id)))
            rows += [None] * (_GROUP_COLUMNS * (_chunk_size(len(chunk)) - len(chunk)))
            self.chunks.append((len(chunk), tuple(rows)))
            self.run_ids.append(json.dumps([record.run_id for record in chunk]))
            self.events.append(json.dumps(events))


class SqliteRecordStore(SqliteAdapter):
    """A record store in one SQLite file: durable, crash-safe, shared by threads and processes.

    Each `store` is one transaction: the version check (``UPDATE ... WHERE version = ?``),
    the one-unfinished-run-per-foreign-id rule (a unique partial index), the snapshot of
    the version (a Data Deleted version also replaces the object of every earlier
    snapshot of the run), and the run's event. When the workflow's event streamer is a
    `SqliteEventStreamer` on the same file (`publish_directly`), the event goes straight
    into the event log, so a transition is one commit and no outbox relay runs;
    otherwise it is an outbox row for the relay. `store_many` commits many records at
    once (group commit), each as `store` would; the next versions of several runs
    published directly take three statements for them all (`_apply_group`), not three
    each. Step error counts are kept in the file,
    so ``pause_after_err_count`` holds across restarts; when the engine asks
    (``forget_errors``), storing a new version of a run forgets that run's counts in the
    same transaction.

    Constructing the store opens nothing; connections open on first use, one per thread.

    Args:
        path: the database file; its directory must exist. The file and its tables are
            created on first use.
        synchronous: SQLite's ``synchronous`` setting. ``"FULL"`` (the default) is
            crash-safe: a committed transition survives a process crash *and* a power
            loss or OS crash (the write-ahead log is synced on every commit).
            ``"NORMAL"`` is several times faster per commit and survives a process
            crash, but the last commits may be lost (never corrupted) on power loss.
        busy_timeout: seconds to wait for the write lock held by another process or thread.
        file_mode: the permissions of a database file this adapter creates (default 0o600,
            owner only; ``None``: SQLite's default under the umask); an existing file keeps its own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        file_mode: int | None = FILE_MODE,
    ) -> None:
        super().__init__(path, synchronous=synchronous, busy_timeout=busy_timeout, file_mode=file_mode)
        self._direct: set[str] = set()

    # -- capabilities ---------------------------------------------------------------------

    def publish_directly(self, workflow_name: str, event_streamer: EventStreamer) -> bool:
        """Write ``workflow_name``'s events into the event log of this file, in the record's transaction.

        True when ``event_streamer`` is a `SqliteEventStreamer` on the same file (the
        paths are compared resolved; nothing is opened).
        """
        if self.acks_for(event_streamer):
            self._direct.add(workflow_name)
            return True
        return False

    def acks_for(self, event_streamer: EventStreamer) -> bool:
        """True when ``event_streamer`` keeps its events and cursors in this file (paths compared resolved)."""
        return isinstance(event_streamer, SqliteEventStreamer) and event_streamer.path == self.path

    # -- writes ---------------------------------------------------------------------------

    def store(self, record: Record) -> None:
        """Create or update ``record`` with its event, in one transaction (`InvalidForeignId` before any)."""
        refusal = foreign_id_refusal(record)
        if refusal is not None:
            raise refusal
        key: str = self.db.write(lambda conn: self._apply(conn, record))
        self.db.hub.bump((key,))

    def store_many(
        self,
        records: Sequence[Record],
        *,
        forget_errors: bool = False,
        fence: Fence | None = None,
        acks: Sequence[CursorMove] = (),
    ) -> builtins.list[Exception | None]:
        """Store each record as `store` would, in order, in one transaction.

        A record refused with `VersionConflict`, `WorkflowInProgress` or (a new run whose
        foreign id breaks the rule, never sent to the file) `InvalidForeignId` is
        reported in its place and never undoes the others. ``forget_errors`` also deletes the error
        counts of each run stored, in the same transaction. ``fence``: the records are
        stored only if that lease is still its role's current one (checked under the
        transaction's write lock, so the role cannot pass on before the commit); else
        `StaleTerm` and nothing is stored. ``acks``: receivers' cursor moves, made in the
        same transaction (`CommitAcks`).
        """
        return store_checked(
            records, functools.partial(self._store_many, forget_errors=forget_errors, fence=fence, acks=acks)
        )

    def _store_many(
        self, records: Sequence[Record], *, forget_errors: bool, fence: Fence | None, acks: Sequence[CursorMove]
    ) -> builtins.list[Exception | None]:
        """`store_many` of records whose foreign ids were checked."""
        if not records:
            return []
        plan = self._plan(records)
        results: list[Exception | None] = []
        keys: set[str] = set()

        def work(conn: sqlite3.Connection) -> None:
            if fence is not None:
                check_fence(conn, self._q, fence)
            # Under the transaction's write lock: no count can appear before the commit. None
            # stored (the common case), no run has any to forget: one probe instead of one each.
            forget = bool(
                forget_errors and conn.execute("SELECT EXISTS (SELECT 1 FROM workflow_error_counts)").fetchone()[0]
            )
            for step in plan:
                if isinstance(step, _Group):
                    stored = self._apply_group(conn, step, forget_errors=forget)
                    results.extend([None] * stored)
                    if stored:
                        keys.update(step.keys)
                    rest = step.records[stored:]  # refused as a group: one by one, to tell which
                else:
                    rest = [step]
                for record in rest:
                    try:
                        keys.add(self._apply(conn, record, forget_errors=forget))
                    except (VersionConflict, WorkflowInProgress) as exc:
                        results.append(exc)
                    else:
                        results.append(None)
            for ack in acks:
                conn.execute(self._q["ack_cursor"], (ack.topic, ack.name, *ack.position)).close()

        self.db.write(work)
        self.db.hub.bump(keys)
        return results

    def _plan(self, records: Sequence[Record]) -> builtins.list[_Group | Record]:
        """``records`` in order, the runs of each stretch of plain next versions published directly in a `_Group`."""

        def plain(record: Record) -> bool:
            return (
                record.meta.version > 1
                and record.run_state is not RunState.DATA_DELETED
                and record.workflow_name in self._direct
                and _GROUPS
            )

        plan: list[_Group | Record] = []
        for step in stretches(records, plain):
            if not isinstance(step, builtins.list):
                plan.append(step)
            elif len(step) > 1:
                plan.append(_Group(step))
            else:
                plan.extend(step)
        return plan

    def _apply_group(self, conn: sqlite3.Connection, group: _Group, *, forget_errors: bool) -> int:
        """Store ``group``'s records as `_apply` would, with three statements a chunk; how many were stored.

        sqlite3 lets go of the GIL around each statement it steps and must then wait for
        it again, behind the other threads' Python: three statements a record kept the
        transaction, and every writer queued behind it, waiting. A chunk is stored whole or
        not at all (see update_records): the records from the first chunk not stored on
        are left to `_apply`, one by one, which tells the refused ones.
        """
        q = self._q
        stored = 0
        for (count, params), run_ids, events in zip(group.chunks, group.run_ids, group.events, strict=True):
            # Not rowcount: sqlite3 leaves it at -1 for a statement opening with WITH.
            before = conn.total_changes
            try:
                conn.execute(_update_statement(len(params) // _GROUP_COLUMNS), params).close()
            except sqlite3.IntegrityError:  # refused by a constraint: SQLite undid the statement
                return stored
            if conn.total_changes - before != count:
                return stored
            conn.execute(q["insert_snapshots"], (run_ids,)).close()
            conn.execute(_events_statement(), (events,)).close()
            if forget_errors:
                conn.execute(q["clear_runs_errors"], (run_ids,)).close()
            stored += count
        return stored

    def _apply(self, conn: sqlite3.Connection, record: Record, *, forget_errors: bool = False) -> str:
        """Write one record, its snapshot and its event; the `Hub` key to bump after commit.

        A refusal is raised before anything is written (the checks come first, and a
        statement that fails a constraint is undone by SQLite alone), so `store_many`
        needs no savepoint to keep the other records of its transaction.
        """
        q = self._q
        run_id = record.run_id
        version = record.meta.version
        params = record_params(record, to_micros)
        if version == 1:
            if record.run_state.finished:
                # The partial index only sees unfinished rows: check a finished newcomer here.
                self._refuse_if_in_progress(conn, record)
            try:
                conn.execute(q["insert_record"], params)
            except sqlite3.IntegrityError as exc:
                raise self._refused(conn, record) from exc
        else:
            # Only what a new version changes: leaving the identity columns (workflow,
            # foreign id, creation time) out of the SET spares SQLite updating their indexes.
            try:
                updated = conn.execute(q["update_record"], update_params(record, to_micros)).rowcount
            except sqlite3.IntegrityError as exc:  # it would make a second unfinished run
                raise self._refused(conn, record) from exc
            if updated != 1:
                msg = f"run {run_id} is not at version {version - 1}; cannot store version {version} over it"
                raise VersionConflict(msg, run_id=run_id)
            if forget_errors:
                conn.execute(q["clear_run_errors"], (run_id,))  # one index probe, same transaction
            if record.run_state is RunState.DATA_DELETED:
                # The deletion reaches every kept version: nothing of the old object survives.
                conn.execute(q["scrub_snapshots"], (bytes(record.object), run_id, version)).close()
        conn.execute(q["insert_snapshot"], params)
        if record.workflow_name in self._direct:
            row = record_event_row(record, to_micros)
            conn.execute(q["insert_event"], row)
            return events_key(row[0])
        conn.execute(q["insert_outbox_event"], outbox_row(record, to_micros))
        return outbox_key(record.workflow_name)

    def _refuse_if_in_progress(self, conn: sqlite3.Connection, record: Record) -> None:
        row = conn.execute(self._q["unfinished_run"], (record.workflow_name, record.foreign_id)).fetchone()
        if row is None:
            return
        if row[0] == record.run_id:
            msg = f"run {record.run_id} exists already; a new record must be a new run"
            raise VersionConflict(msg, run_id=record.run_id)
        raise WorkflowInProgress(run_id=row[0], foreign_id=record.foreign_id)

    def _refused(self, conn: sqlite3.Connection, record: Record) -> Exception:
        """Why a write broke a unique constraint: the run exists, or another run is unfinished."""
        if record.meta.version == 1 and conn.execute(self._q["run_exists"], (record.run_id,)).fetchone()[0]:
            msg = f"run {record.run_id} exists already; version 1 creates a run, it cannot update one"
            return VersionConflict(msg, run_id=record.run_id)
        row = conn.execute(self._q["unfinished_run"], (record.workflow_name, record.foreign_id)).fetchone()
        return WorkflowInProgress(run_id=row[0] if row else None, foreign_id=record.foreign_id)

    # -- reads ----------------------------------------------------------------------------

    def _record(self, row: Sequence[Any]) -> Record:
        return read_record(row, from_micros, where=self.path)

    def _records(self, rows: Iterable[Sequence[Any]]) -> builtins.list[Record]:
        return readable_records(rows, from_micros, where=self.path, log=logger)

    def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``; `CorruptRecord` when its row cannot be read."""
        rows = self.db.fetch(self._q["lookup_record"], (run_id,))
        if not rows:
            raise RecordNotFound(run_id=run_id)
        return self._record(rows[0])

    def lookup_many(self, run_ids: Iterable[str]) -> dict[str, Record]:
        """The records of ``run_ids`` by run id, in one query; unknown and unreadable ones left out.

        An unreadable row is left for `lookup` to report as `CorruptRecord`.
        """
        wanted = json.dumps(list(dict.fromkeys(run_ids)))
        return records_by_run(self.db.fetch(self._q["lookup_records"], (wanted,)), from_micros, where=self.path)

    def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The most recently created run of ``foreign_id`` (creation time, then write order)."""
        rows = self.db.fetch(self._q["latest_record"], (workflow_name, foreign_id))
        if not rows:
            raise RecordNotFound(workflow_name=workflow_name, foreign_id=foreign_id)
        return self._record(rows[0])

    def list(
        self,
        workflow_name: str,
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = "asc",
        filter: RecordFilter | None = None,  # noqa: A002 - the contract's name
    ) -> builtins.list[Record]:
        """Records in creation order (``desc``: newest first), filtered, then paged.

        Unreadable rows are logged and left out.
        """
        direction = sort_direction(order)
        where, params = filter_clause(workflow_name, filter, to_micros)
        query = self._q["list_records"].format(where=where.replace("%s", "?"), direction=direction)
        return self._records(self.db.fetch(query, (*params, limit, offset)))

    def page(
        self,
        workflow_name: str,
        *,
        limit: int = 50,
        order: Order = "desc",
        filter: RecordFilter | None = None,  # noqa: A002 - as in list
        after: str | None = None,
    ) -> RecordPage:
        """Up to ``limit`` records in creation order after the cursor ``after`` (unreadable rows left out)."""
        where, direction, params = page_clause(
            workflow_name, filter, order=order, after=after, seq_column="id", time_out=to_micros
        )
        query = self._q["page_records"].format(where=where.replace("%s", "?"), direction=direction)
        rows = self.db.fetch(query, (*params, limit + 1))
        return page_from_rows(rows, limit, from_micros, where=self.path, log=logger)

    def count_runs(self, workflow_name: str, *, filter: RecordFilter | None = None) -> builtins.list[RunCount]:  # noqa: A002
        """The number of matching runs per (workflow, status, status name, run state)."""
        where, params = filter_clause(workflow_name, filter, to_micros)
        query = self._q["count_runs"].format(where=where.replace("%s", "?"))
        return count_rows(self.db.fetch(query, params))

    def carries_events_of(self, workflow_name: str, topics: Sequence[str]) -> bool:
        """True when this database's event log is in use for ``workflow_name`` (see `OwnEventLog`)."""
        prefix = topic_prefix(workflow_name)
        rows = self.db.fetch(self._q["carries_events_of"], (len(prefix), prefix, json.dumps(list(topics))))
        return bool(rows[0][0])

    def snapshots(self, run_id: str) -> builtins.list[Record]:
        """Every stored version of the run, oldest first (unreadable ones logged and left out)."""
        return self._records(self.db.fetch(self._q["select_snapshots"], (run_id,)))

    # -- outbox -----------------------------------------------------------------------------

    def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        """Up to ``limit`` outbox events of the workflow, oldest first.

        A row that cannot be read can never be relayed: it is logged and deleted, so it
        does not hold up the rows behind it.
        """
        rows = self.db.fetch(self._q["list_outbox_events"], (workflow_name, limit))
        events, unreadable = outbox_from_rows(rows, from_micros, where=self.path, log=logger)
        if unreadable:
            self.delete_outbox_events(unreadable)
        return events

    def delete_outbox_event(self, id: str) -> None:  # noqa: A002 - the contract's name
        """Remove one relayed outbox event (unknown ids are ignored)."""
        self.delete_outbox_events((id,))

    def delete_outbox_events(self, ids: Iterable[str]) -> None:
        """Remove relayed outbox events in one transaction (unknown ids are ignored)."""
        rows = [(outbox_id,) for outbox_id in ids]
        if rows:
            self.db.write(lambda conn: conn.executemany(self._q["delete_outbox_event"], rows).close())

    def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Block until the workflow has outbox events, or ``timeout`` seconds pass.

        A write of this process wakes it at once; writes of other processes are found by
        looking at the table every quarter second.
        """

        def found() -> bool:
            return bool(self.db.fetch(self._q["has_outbox_events"], (workflow_name,))[0][0])

        self.db.hub.wait_until(outbox_key(workflow_name), found, timeout, _OUTBOX_POLL)

    def interrupt_outbox_wait(self, workflow_name: str) -> None:
        """Make this process's waits for the workflow's outbox return now (their key is bumped)."""
        self.db.hub.bump([outbox_key(workflow_name)])

    # -- error counts -----------------------------------------------------------------------

    def add_error(self, process: str, run_id: str) -> int:
        """Count one more step error of (process, run), durably; the count so far."""
        count: int = self.db.write(lambda conn: conn.execute(self._q["add_error"], (process, run_id)).fetchone()[0])
        return count

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the step errors of (process, run): the run moved on."""
        self.db.write(lambda conn: conn.execute(self._q["clear_errors"], (process, run_id)).close())

    # -- in-flight log ------------------------------------------------------------------

    def begin_batch(self, process: str, run_ids: Sequence[str]) -> None:
        """Note (durably) the runs ``process`` is about to handle."""
        noted = json.dumps(list(run_ids))
        self.db.write(lambda conn: conn.execute(self._q["begin_batch"], (process, noted)).close())

    def unfinished_batch(self, process: str) -> builtins.list[str]:
        """The runs of the last batch ``process`` noted and did not finish."""
        rows = self.db.fetch(self._q["unfinished_batch"], (process,))
        return decode_run_ids(rows[0][0]) if rows else []

    def end_batches(self, process: str) -> None:
        """Nothing of ``process`` is in flight (it stopped cleanly, or has nothing in hand)."""
        self.db.write(lambda conn: conn.execute(self._q["end_batches"], (process,)).close())
