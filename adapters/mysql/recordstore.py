"""`MysqlRecordStore`: runs, their snapshots, and each write's event in one InnoDB transaction."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]

from actorflow.capabilities import CursorMove, RecordPage, RunCount
from actorflow.errors import VersionConflict, WorkflowInProgress
from actorflow.event import OutboxEvent, event_topic
from actorflow.protocols import EventStreamer, Fence, Order, RecordFilter
from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.topics import topic_prefix

from .._sql import (
    count_rows,
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
from .._sql.server import ServerRecordStore
from ._db import QUERIES, Database, MysqlAdapter, check_fence, from_db, insert_events, logger, to_db, transaction

__all__ = ["MysqlRecordStore"]

# How often wait_for_outbox looks at the table for rows written by other processes
# (writes of this process wake it at once).
_OUTBOX_POLL = 0.25
_DUPLICATE = 1062


def _ids(count: int) -> str:
    """``count`` placeholders for an ``IN (...)`` list."""
    return ", ".join(["%s"] * count)


def _stored_refusal(exc: pymysql.err.IntegrityError) -> bool:
    return bool(exc.args) and exc.args[0] == _DUPLICATE


class MysqlRecordStore(MysqlAdapter, ServerRecordStore[Database]):
    """A record store in MySQL/MariaDB (PyMySQL, pooled connections).

    Every `store` is one transaction: the record (an insert, or an update conditioned on
    the version the writer read: ``VersionConflict`` when another writer got there
    first), its snapshot, and its event; a Data Deleted version also replaces the object
    of every earlier snapshot of the run in the same transaction. "One unfinished run per
    foreign id" is a unique index over a generated column (the foreign id while the run
    is unfinished, NULL after), so two racing new runs cannot both commit
    (``WorkflowInProgress``). When the workflow's streamer is a `MysqlEventStreamer` on
    the same database (`publish_directly`), the event goes straight into the event log:
    one commit per transition and no outbox relay; otherwise it goes to the outbox.
    `store_many` commits a batch in one transaction, each record checked on its own.
    Step errors are counted durably (`add_error`); when the engine asks
    (``forget_errors``), storing a new version of a run forgets that run's counts in the
    same transaction.

    Args:
        dsn: ``mysql://user[:password]@host[:port]/database``.
        max_connections: the pool's size.
    """

    def __init__(self, dsn: str, *, max_connections: int = 10) -> None:
        super().__init__(dsn, max_connections=max_connections)
        self._direct: set[str] = set()
        self._handed: dict[str, Callable[[Record], bool] | None] = {}

    # -- capabilities -------------------------------------------------------------------

    def acks_for(self, event_streamer: EventStreamer) -> bool:
        """True when ``event_streamer`` keeps its events and cursors in this database (server, port, database)."""
        from .streamer import MysqlEventStreamer  # noqa: PLC0415 - avoid a cycle

        return isinstance(event_streamer, MysqlEventStreamer) and event_streamer.db.identity == self.db.identity

    # -- writes -------------------------------------------------------------------------

    def _store_many(
        self, records: Sequence[Record], *, forget_errors: bool, fence: Fence | None, acks: Sequence[CursorMove]
    ) -> builtins.list[Exception | None]:
        """`store_many` of records whose foreign ids were checked, in one transaction.

        A refused record costs no savepoint: InnoDB undoes only the statement that broke a
        unique index, and the version check is a condition of the update. If the
        connection is lost, the batch is sent again (`Database.run`); a record the first
        attempt did commit then fails its version check, so a refusal of a record whose
        stored row is exactly this record counts as stored.
        """
        if not records:
            return []
        attempts = 0
        keys: set[str] = set()

        def store(conn: Any) -> list[Exception | None]:
            nonlocal attempts
            attempts += 1
            keys.clear()
            with transaction(conn) as cur:
                if fence is not None:
                    check_fence(cur, fence)
                results = self._store_batch(cur, records, forget_errors=forget_errors, acks=acks, keys=keys)
            if attempts > 1:
                with conn.cursor() as cur:
                    results = [
                        None if error is not None and self._is_stored(cur, record) else error
                        for record, error in zip(records, results, strict=True)
                    ]
            return results

        results = self.db.run("storing records", store)
        self.db.wakeups.bump(keys)
        return results

    def _store_batch(
        self,
        cur: Any,
        records: Sequence[Record],
        *,
        forget_errors: bool,
        acks: Sequence[CursorMove],
        keys: set[str],
    ) -> list[Exception | None]:
        """Write each record in order (the caller's transaction); its refusal, or ``None``.

        Snapshots and outbox rows are written a statement for many; the events last, as
        `insert_events` requires (the sequence row is locked from then to the commit).
        """
        results: list[Exception | None] = []
        snapshots: list[tuple[Any, ...]] = []
        outbox: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for record in records:
            try:
                self._write(cur, record, forget_errors=forget_errors, snapshots=snapshots)
            except (VersionConflict, WorkflowInProgress) as exc:
                results.append(exc)
                continue
            results.append(None)
            snapshots.append(record_params(record, to_db))
            if record.workflow_name in self._direct:
                events.append(record_event_row(record, to_db))
                if self._announced(record):  # else handed to this process's consumer (`LocalWakeups`)
                    keys.add(f"e:{event_topic(record)}")
            else:
                outbox.append(outbox_row(record, to_db))
                keys.add(f"o:{record.workflow_name}")
        _flush_snapshots(cur, snapshots)
        if outbox:
            cur.executemany(QUERIES["insert_outbox"], outbox)
        for ack in acks:
            cur.execute(QUERIES["save_cursor"], (ack.topic, ack.name, *ack.position))
        insert_events(cur, events)
        return results

    def _write(self, cur: Any, record: Record, *, forget_errors: bool, snapshots: list[tuple[Any, ...]]) -> None:
        """Write one record's row (not its snapshot); `VersionConflict` or `WorkflowInProgress` when refused."""
        run_id = record.run_id
        version = record.meta.version
        if version == 1:
            if record.run_state.finished:
                # The unique index only sees unfinished runs: a finished newcomer is checked here.
                self._refuse_if_in_progress(cur, record)
            try:
                cur.execute(QUERIES["insert_record"], record_params(record, to_db))
            except pymysql.err.IntegrityError as exc:
                if not _stored_refusal(exc):
                    raise
                raise self._refused(cur, record) from None
            return
        try:
            updated = cur.execute(QUERIES["update_record"], update_params(record, to_db))
        except pymysql.err.IntegrityError as exc:  # it would make a second unfinished run
            if not _stored_refusal(exc):
                raise
            raise self._refused(cur, record) from None
        if updated != 1:
            msg = f"run {run_id} is not at version {version - 1} (or does not exist)"
            raise VersionConflict(msg, run_id=run_id)
        if forget_errors:
            cur.execute(QUERIES["clear_run_errors"], (run_id,))
        if record.run_state is RunState.DATA_DELETED:
            # The deletion reaches every kept version, those of this batch included.
            _flush_snapshots(cur, snapshots)
            cur.execute(QUERIES["scrub_snapshots"], (bytes(record.object), run_id, version))

    def _refuse_if_in_progress(self, cur: Any, record: Record) -> None:
        cur.execute(QUERIES["unfinished_run"], (record.workflow_name, record.foreign_id))
        row = cur.fetchone()
        if row is None:
            return
        if row[0] == record.run_id:
            msg = f"run {record.run_id} exists already; a new record must be a new run"
            raise VersionConflict(msg, run_id=record.run_id)
        raise WorkflowInProgress(run_id=row[0], foreign_id=record.foreign_id)

    def _refused(self, cur: Any, record: Record) -> Exception:
        """Why a write broke a unique index: the run exists, or another run of the foreign id is unfinished."""
        if record.meta.version == 1:
            cur.execute(QUERIES["run_exists"], (record.run_id,))
            if cur.fetchone() is not None:
                msg = f"run {record.run_id} exists already; version 1 creates a run, it cannot update one"
                return VersionConflict(msg, run_id=record.run_id)
        cur.execute(QUERIES["unfinished_run"], (record.workflow_name, record.foreign_id))
        row = cur.fetchone()
        return WorkflowInProgress(run_id=row[0] if row else None, foreign_id=record.foreign_id)

    def _is_stored(self, cur: Any, record: Record) -> bool:
        cur.execute(QUERIES["lookup"], (record.run_id,))
        found = records_by_run(cur.fetchall(), from_db, where=self._where)
        return found.get(record.run_id) == record

    # -- reads --------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"MySQL database {self.db.settings.database}"

    def _record(self, row: Sequence[Any]) -> Record:
        return read_record(row, from_db, where=self._where)

    def _records(self, rows: Iterable[Sequence[Any]]) -> builtins.list[Record]:
        return readable_records(rows, from_db, where=self._where, log=logger)

    def lookup_many(self, run_ids: Iterable[str]) -> dict[str, Record]:
        """The records of many runs in one query (missing and unreadable ones left out: `lookup` reports those)."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        query = QUERIES["lookup_many"].replace("{ids}", _ids(len(ids)))
        return records_by_run(self.db.fetchall("looking up records", query, ids), from_db, where=self._where)

    def list(
        self,
        workflow_name: str,
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = "asc",
        filter: RecordFilter | None = None,  # noqa: A002 - the contract's name
    ) -> builtins.list[Record]:
        """Records by creation time (``desc``: newest first), filtered, then paged; unreadable rows left out."""
        direction = sort_direction(order)
        where, params = filter_clause(workflow_name, filter, to_db)
        query = QUERIES["list_records"].format(where=where, direction=direction)
        return self._records(self.db.fetchall("listing records", query, (*params, limit, offset)))

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
            workflow_name, filter, order=order, after=after, seq_column="created_seq", time_out=to_db
        )
        query = QUERIES["page_records"].format(where=where, direction=direction)
        rows = self.db.fetchall("paging records", query, (*params, limit + 1))
        return page_from_rows(rows, limit, from_db, where=self._where, log=logger)

    def count_runs(self, workflow_name: str, *, filter: RecordFilter | None = None) -> builtins.list[RunCount]:  # noqa: A002
        """The number of matching runs per (workflow, status, status name, run state)."""
        where, params = filter_clause(workflow_name, filter, to_db)
        query = QUERIES["count_runs"].format(where=where)
        return count_rows(self.db.fetchall("counting runs", query, params))

    def carries_events_of(self, workflow_name: str, topics: Sequence[str]) -> bool:
        """True when this database's event log is in use for ``workflow_name`` (see `OwnEventLog`)."""
        prefix = topic_prefix(workflow_name)
        row = self.db.fetchone("finding the workflow's cursors", QUERIES["cursors_of_workflow"], (len(prefix), prefix))
        if row and row[0]:
            return True
        wanted = list(dict.fromkeys(topics))
        if not wanted:
            return False
        query = QUERIES["events_of_topics"].replace("{ids}", _ids(len(wanted)))
        row = self.db.fetchone("finding the workflow's events", query, wanted)
        return bool(row and row[0])

    def snapshots(self, run_id: str) -> builtins.list[Record]:
        """Every stored version of the run, oldest first (unreadable ones logged and left out)."""
        return self._records(self.db.fetchall("reading snapshots", QUERIES["snapshots"], (run_id,)))

    # -- outbox -------------------------------------------------------------------------

    def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        """Up to ``limit`` outbox events of the workflow, oldest first.

        A row that cannot be read can never be relayed: it is logged and deleted, so it
        does not hold up the rows behind it.
        """
        rows = self.db.fetchall("listing the outbox", QUERIES["list_outbox"], (workflow_name, limit))
        events, unreadable = outbox_from_rows(rows, from_db, where=self._where, log=logger)
        if unreadable:
            self.delete_outbox_events(unreadable)
        return events

    def delete_outbox_event(self, id: str) -> None:  # noqa: A002 - the contract's name
        """Remove one relayed outbox event (an unknown id is ignored)."""
        self.delete_outbox_events((id,))

    def delete_outbox_events(self, ids: Iterable[str]) -> None:
        """Remove relayed outbox events in one statement (unknown ids are ignored)."""
        wanted = list(dict.fromkeys(ids))
        if wanted:
            query = QUERIES["delete_outbox"].replace("{ids}", _ids(len(wanted)))
            self.db.execute("deleting outbox events", query, wanted)

    def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Block until the workflow has outbox events, or ``timeout`` seconds pass.

        A write of this process wakes it at once; writes of other processes are found by
        looking at the table every quarter second.
        """

        def found() -> bool:
            row = self.db.fetchone("looking at the outbox", QUERIES["has_outbox_events"], (workflow_name,))
            return bool(row and row[0])

        self.db.wakeups.wait_until(f"o:{workflow_name}", found, timeout, _OUTBOX_POLL)

    def interrupt_outbox_wait(self, workflow_name: str) -> None:
        """Make this process's waits for the workflow's outbox return now (their key is bumped)."""
        self.db.wakeups.bump([f"o:{workflow_name}"])

    # -- error counts ---------------------------------------------------------------------

    def add_error(self, process: str, run_id: str) -> int:
        """Count one step error of (process, run), durably; the count so far.

        Never sent twice: if the connection is lost while the count is being written, its
        outcome is unknown and `MysqlError` is raised (the step runs again and counts
        then) rather than risking one error being counted twice.
        """

        def count(conn: Any) -> int:
            with conn.cursor() as cur:
                cur.execute(QUERIES["add_error"], (process, run_id))
                return int(cur.lastrowid or 0)

        return self.db.run("counting an error", count, resend=False) or 1


def _flush_snapshots(cur: Any, snapshots: list[tuple[Any, ...]]) -> None:
    """Insert the pending snapshot rows in one statement (and forget them)."""
    if snapshots:
        cur.executemany(QUERIES["insert_snapshot"], snapshots)
        snapshots.clear()
