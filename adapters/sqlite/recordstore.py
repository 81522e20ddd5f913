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
from actorflow.event import OutboxEvent
from actorflow.protocols import EventStreamer, Fence, Order, RecordFilter
from actorflow.record import Record, foreign_id_refusal, store_checked
from actorflow.runstate import RunState
from actorflow.topics import topic_prefix

from .._sql import (
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
from ._db import FILE_MODE, SqliteAdapter, check_fence, events_key, from_micros, logger, outbox_key, to_micros
from .streamer import SqliteEventStreamer

__all__ = ["SqliteRecordStore"]

# How often wait_for_outbox looks at the table for rows written by other processes
# (writes of this process wake it at once).
_OUTBOX_POLL = 0.25


class SqliteRecordStore(SqliteAdapter):
    """A record store in one SQLite file: durable, crash-safe, shared by threads and processes.

    Each `store` is one transaction: the version check (``UPDATE ... WHERE version = ?``),
    the one-unfinished-run-per-foreign-id rule (a unique partial index), the snapshot of
    the version (a Data Deleted version also replaces the object of every earlier
    snapshot of the run), and the run's event. When the workflow's event streamer is a
    `SqliteEventStreamer` on the same file (`publish_directly`), the event goes straight
    into the event log, so a transition is one commit and no outbox relay runs;
    otherwise it is an outbox row for the relay. `store_many` commits many records at
    once (group commit), each as `store` would. Step error counts are kept in the file,
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
        results: list[Exception | None] = []
        keys: set[str] = set()

        def work(conn: sqlite3.Connection) -> None:
            if fence is not None:
                check_fence(conn, self._q, fence)
            # Under the transaction's write lock: no count can appear before the commit. None
            # stored (the common case), no run has any to forget: one probe instead of one each.
            forget = forget_errors and conn.execute("SELECT EXISTS (SELECT 1 FROM workflow_error_counts)").fetchone()[0]
            for record in records:
                try:
                    keys.add(self._apply(conn, record, forget_errors=bool(forget)))
                except (VersionConflict, WorkflowInProgress) as exc:
                    results.append(exc)
                else:
                    results.append(None)
            for ack in acks:
                conn.execute(self._q["ack_cursor"], (ack.topic, ack.name, *ack.position)).close()

        self.db.write(work)
        self.db.hub.bump(keys)
        return results

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
