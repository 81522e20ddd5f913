"""`PostgresRecordStore`: runs, their snapshots, and each write's event in one transaction."""

from __future__ import annotations

import builtins
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg

from actorflow.capabilities import CursorMove, RecordPage, RunCount
from actorflow.errors import VersionConflict, WorkflowInProgress
from actorflow.event import OutboxEvent, event_headers, event_topic, make_outbox_event, shard_hash
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
    records_by_run,
    sort_direction,
    update_params,
)
from .._sql.fleet import stale_term
from .._sql.server import ServerRecordStore
from .._sql.stretches import stretches
from ._db import Database, PostgresAdapter, check_fence
from ._errors import logger
from ._rows import rows_of
from ._schema import QUERIES
from .listener import event_notice

__all__ = ["PostgresRecordStore"]


def _scrubbing_update(*, direct: bool, forget: bool) -> str:
    """``update_record`` to Data Deleted: its event (or outbox row), maybe the error clean-up, and the scrub.

    The scrub gives every earlier snapshot the new object too.
    """
    publish = QUERIES["publish_event" if direct else "publish_outbox"].format(source="upd")
    return QUERIES["update_record"].format(
        publish=publish,
        forget=QUERIES["forget_errors"] + ", " if forget else "",
        scrub=QUERIES["scrub_snapshots"] + ", ",
    )


# By (direct, forget_errors): the statement of a Data Deleted version (`_groups`: the only
# update that goes on its own; the others go as `commit_updates`, a new run as `_INSERT`).
_SCRUB = {
    (direct, forget): _scrubbing_update(direct=direct, forget=forget)
    for direct in (True, False)
    for forget in (True, False)
}

_FENCED = "WHERE EXISTS (SELECT 1 FROM lease)"  # a commit's rows, only while its lease holds


def _updates_ctes(*, forget: bool, fenced: bool) -> str:
    """``commit_updates``, maybe forgetting the runs' error counts, maybe under the lease."""
    forgetting = QUERIES["forget_errors_of_all"] + ", " if forget else ""
    return QUERIES["commit_updates"].format(forget=forgetting, fenced=_FENCED if fenced else "")


# By forget_errors: a run of plain updates within a batch stored the long way (`_groups`).
_UPDATE_MANY = {
    forget: ("WITH " + _updates_ctes(forget=forget, fenced=False) + " SELECT i FROM upd").encode()  # noqa: S608 - fixed fragments
    for forget in (True, False)
}


# A new run alone (its row as `_new_run` makes it, in a JSON array): `commit_insert` on its own.
_INSERT = "WITH " + QUERIES["commit_insert"].format(fenced="") + " SELECT count(*) FROM ins"  # noqa: S608 - fixed fragments


@functools.cache
def _commit_statement(*, updates: bool, insert: bool, fenced: bool, acks: bool, forget: bool) -> bytes:
    """A whole commit as one statement (its own transaction on an autocommit session).

    One round trip, where a transaction of several statements took a dozen waits on the
    socket: a lone record's commit cost the interpreter about 100 us instead of 400, and
    half the time. Parameters, in order: the lease (role, node, term), the updates (JSON),
    the new run (JSON), the cursor moves (JSON), the channel and the notices. Its one row:
    whether the lease held, the "i" of each update stored, whether the new run was.
    """
    fence = _FENCED if fenced else ""
    ctes = [QUERIES["commit_lease"]] if fenced else []
    if updates:
        ctes.append(_updates_ctes(forget=forget, fenced=fenced))
    if insert:
        ctes.append(QUERIES["commit_insert"].format(fenced=fence))
    if acks:
        ctes.append(QUERIES["commit_cursors"].format(fenced=fence))
    columns = (
        "(SELECT count(*) FROM lease)" if fenced else "1",
        "(SELECT array_agg(i) FROM upd)" if updates else "NULL",
        "(SELECT count(*) FROM ins)" if insert else "NULL",
        QUERIES["commit_notify"],
    )
    head = "WITH " + ", ".join(ctes) + " " if ctes else ""
    return (head + "SELECT " + ", ".join(columns)).encode()


_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _version_row(record: Record, *, direct: bool) -> dict[str, Any]:
    """A record's version as a JSON row of ``commit_updates`` and ``commit_insert`` (their short keys).

    Its event goes to the log (topic and shard hash given) or to the outbox (its row's id).
    """
    meta = record.meta
    return {
        "r": record.run_id,
        "v": meta.version,
        "s": int(record.run_state),
        "t": int(record.status),
        "o": bytes(record.object).hex(),
        "u": record.updated_at.isoformat(),
        "rr": meta.run_state_reason,
        "sd": meta.status_description,
        "tr": meta.trace_origin,
        "tp": event_topic(record) if direct else None,
        "h": event_headers(record),
        "sh": shard_hash(record.run_id) if direct else None,
        "ob": None if direct else make_outbox_event(record).id,
    }


def _new_run(record: Record, *, direct: bool) -> dict[str, Any]:
    """A new run's row for ``commit_insert``: its version's, with what a new run sets once."""
    row = _version_row(record, direct=direct)
    row.update(wf=record.workflow_name, fi=record.foreign_id, c=record.created_at.isoformat())
    return row


def _latest_moves(acks: Sequence[CursorMove]) -> list[dict[str, Any]]:
    """One move a receiver (its furthest): one statement cannot move a cursor twice."""
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    for ack in acks:
        xid, event_id = ack.position
        key, at = (ack.topic, ack.name), (int(xid), int(event_id))
        if key not in latest or latest[key] < at:
            latest[key] = at
    return [{"topic": t, "name": n, "xid": str(x), "id": i} for (t, n), (x, i) in latest.items()]


def _plain_update(record: Record) -> bool:
    """A next version `_groups` stores with others in one `update_records` (not Data Deleted)."""
    return record.meta.version > 1 and record.run_state is not RunState.DATA_DELETED


class _Updates:
    """Consecutive updates of a batch, stored by one `update_records` statement (no run twice)."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, record: Record, *, direct: bool) -> None:
        row = _version_row(record, direct=direct)
        row["i"] = len(self.rows)
        self.rows.append(row)


class PostgresRecordStore(PostgresAdapter, ServerRecordStore[Database]):
    """A record store in PostgreSQL (psycopg 3, pooled connections).

    Every `store` is one transaction: the record (insert, or an update conditioned on
    the version the writer read), its snapshot, and its event; a Data Deleted version
    also replaces the object of every earlier snapshot of the run (the same statement). When the workflow's
    streamer is a `PostgresEventStreamer` on the same database and schema, the event
    goes straight into the event log (`publish_directly`): one commit per transition,
    and no outbox relay. Otherwise it goes to the outbox for the relay. `store_many`
    commits a batch in one transaction, each record checked on its own. Step errors are
    counted durably (`add_error`); when the engine asks (``forget_errors``), storing a
    new version of a run forgets that run's counts in the same statement.

    Args:
        dsn: a libpq connection string or URL.
        schema: the schema the tables live in (created if missing).
        max_connections: the pool's size.
    """

    def __init__(self, dsn: str, *, schema: str = "public", max_connections: int = 10) -> None:
        super().__init__(dsn, schema=schema, max_connections=max_connections)
        self._direct: set[str] = set()
        self._handed: dict[str, Callable[[Record], bool] | None] = {}

    # -- capabilities -------------------------------------------------------------------

    def acks_for(self, event_streamer: EventStreamer) -> bool:
        """True when ``event_streamer`` keeps its events and cursors in this database (server, database, schema)."""
        from .streamer import PostgresEventStreamer  # noqa: PLC0415 - avoid a cycle

        return isinstance(event_streamer, PostgresEventStreamer) and event_streamer.db.identity == self.db.identity

    # -- writes -------------------------------------------------------------------------

    def _params(self, record: Record, *, forget_errors: bool) -> tuple[str, tuple[Any, ...]]:
        """The statement and parameters of a record `_groups` stores alone: a new run, or a Data Deleted version."""
        direct = record.workflow_name in self._direct
        if record.meta.version == 1:
            return _INSERT, (_COMPACT.encode([_new_run(record, direct=direct)]),)
        publish = record_event_row(record) if direct else outbox_row(record)
        return _SCRUB[direct, forget_errors], update_params(record) + publish

    def _notices(self, records: Sequence[Record]) -> list[str]:
        """One notice per topic written to (naming the runs' shard hashes), one per outbox."""
        topics: dict[str, list[int]] = {}
        outboxes: dict[str, None] = {}
        for r in records:
            if r.workflow_name in self._direct:
                if self._announced(r):
                    topics.setdefault(f"e:{event_topic(r)}", []).append(shard_hash(r.run_id))
            else:
                outboxes[f"o:{r.workflow_name}"] = None
        return [event_notice(key, hashes) for key, hashes in topics.items()] + list(outboxes)

    def _failure(self, conn: psycopg.Connection[Any], record: Record, *, in_progress: bool = False) -> Exception:
        if in_progress:
            return WorkflowInProgress(run_id=record.run_id, foreign_id=record.foreign_id)
        if record.meta.version == 1:
            if conn.execute(QUERIES["run_exists"], (record.run_id,)).fetchone():
                return VersionConflict(f"run {record.run_id} already exists", run_id=record.run_id)
            return WorkflowInProgress(run_id=record.run_id, foreign_id=record.foreign_id)
        msg = f"run {record.run_id} is not at version {record.meta.version - 1} (or does not exist)"
        return VersionConflict(msg, run_id=record.run_id)

    def _store_many(
        self, records: Sequence[Record], *, forget_errors: bool, fence: Fence | None, acks: Sequence[CursorMove]
    ) -> list[Exception | None]:
        """`store_many` of records whose foreign ids were checked, in one transaction.

        If the connection is lost, the batch is sent once more (`Database.run`); a record
        the first attempt did commit then fails its version check, so a conflict on a
        record whose stored row is exactly this record counts as stored.
        """
        if not records:
            return []
        attempts = 0

        def store(conn: psycopg.Connection[Any]) -> list[Exception | None]:
            nonlocal attempts
            attempts += 1
            try:
                counts = self._store_batch(conn, records, forget_errors=forget_errors, fence=fence, acks=acks)
            except psycopg.errors.IntegrityError:
                # A constraint failed mid-batch (rare): redo it record by record, the cursor move after.
                counts = []
                for record in records:
                    try:
                        counts.extend(self._store_batch(conn, [record], forget_errors=forget_errors, fence=fence))
                    except psycopg.errors.IntegrityError:
                        counts.append(-1)
                _move_cursors(conn, acks)
            results: list[Exception | None] = []
            for record, count in zip(records, counts, strict=True):
                if count > 0 or (attempts > 1 and self._is_stored(conn, record)):
                    results.append(None)
                else:
                    results.append(self._failure(conn, record, in_progress=count < 0))
            return results

        return self.db.run("storing records", store)

    def _is_stored(self, conn: psycopg.Connection[Any], record: Record) -> bool:
        found = records_by_run(rows_of(conn.execute(QUERIES["lookup"], (record.run_id,))), where=self._where)
        return found.get(record.run_id) == record

    def _store_batch(
        self,
        conn: psycopg.Connection[Any],
        records: Sequence[Record],
        *,
        forget_errors: bool,
        fence: Fence | None,
        acks: Sequence[CursorMove] = (),
    ) -> list[int]:
        """Rows written per record (0: its check failed), in one pipelined round trip.

        Consecutive records of the same statement go in one executemany, in order, so
        version 1 then version 2 of one run in one batch both apply. The notifications
        are queued in the same transaction and delivered by PostgreSQL on commit.
        """
        at_once = self._at_once(records)
        if at_once is not None:
            return self._commit_at_once(conn, records, at_once, forget_errors=forget_errors, fence=fence, acks=acks)
        groups = self._groups(records, forget_errors=forget_errors)
        counts: list[int] = []
        cursors: list[tuple[psycopg.Cursor[Any], int]] = []
        # Everything goes out in one round trip; the results are read after the commit. A
        # writer frozen mid-transaction holds its locks until a node they block ends its
        # session (`Database.run` on a lock timeout, see _connect.py).
        with conn.pipeline():
            with conn.transaction():
                if fence is not None:
                    with conn.cursor() as cur:
                        check_fence(cur, fence)
                for group in groups:
                    cur = conn.cursor()
                    if isinstance(group, _Updates):
                        cur.execute(_UPDATE_MANY[forget_errors], (_COMPACT.encode(group.rows),))
                        cursors.append((cur, len(group.rows)))
                    else:
                        cur.executemany(group[0].encode(), group[1], returning=True)
                        cursors.append((cur, -1))
                _move_cursors(conn, acks)
                self.db.notify(conn, self._notices(records))
            for cur, updates in cursors:
                with cur:
                    if updates >= 0:  # the "i" of each update stored
                        stored = {row[0] for row in cur.fetchall()}
                        counts.extend(1 if i in stored else 0 for i in range(updates))
                        continue
                    while True:
                        row = cur.fetchone()
                        counts.append(int(row[0]) if row else 0)
                        if not cur.nextset():
                            break
        return counts

    @staticmethod
    def _at_once(records: Sequence[Record]) -> tuple[list[int], int | None] | None:
        """Whether the batch fits one statement: the positions of its plain updates and of its one new run.

        It does when no run comes twice, there is at most one new run, and no Data
        Deleted version (its scrub of the earlier snapshots has its own statement).
        """
        updates: list[int] = []
        insert: int | None = None
        seen: set[str] = set()
        for position, record in enumerate(records):
            if record.run_id in seen:
                return None
            seen.add(record.run_id)
            if record.meta.version == 1:
                if insert is not None:
                    return None
                insert = position
            elif record.run_state is RunState.DATA_DELETED:
                return None
            else:
                updates.append(position)
        return updates, insert

    def _commit_at_once(
        self,
        conn: psycopg.Connection[Any],
        records: Sequence[Record],
        at_once: tuple[list[int], int | None],
        *,
        forget_errors: bool,
        fence: Fence | None,
        acks: Sequence[CursorMove],
    ) -> list[int]:
        """`_store_batch` as one statement (`_commit_statement`): rows written per record, 0 when its check failed."""
        updates, insert = at_once
        params: list[Any] = [] if fence is None else [fence.role, fence.node_id, fence.term]
        if updates:
            group = _Updates()
            for position in updates:
                record = records[position]
                group.add(record, direct=record.workflow_name in self._direct)
            params.append(_COMPACT.encode(group.rows))
        if insert is not None:
            new = records[insert]
            params.append(_COMPACT.encode([_new_run(new, direct=new.workflow_name in self._direct)]))
        moves = _latest_moves(acks)
        if moves:
            params.append(_COMPACT.encode(moves))
        params += [self.db.channel, list(dict.fromkeys(self._notices(records)))]
        query = _commit_statement(
            updates=bool(updates),
            insert=insert is not None,
            fenced=fence is not None,
            acks=bool(moves),
            forget=forget_errors and bool(updates),
        )
        row = conn.execute(query, params).fetchone()
        assert row is not None  # noqa: S101 - a SELECT without FROM gives one row
        held, stored, inserted, _ = row
        if fence is not None and not held:
            raise stale_term(fence)  # every write was conditioned on the lease: none was made
        counts = [0] * len(records)
        done = set(stored or ())
        for i, position in enumerate(updates):
            counts[position] = 1 if i in done else 0
        if insert is not None:
            counts[insert] = int(inserted)
        return counts

    def _groups(
        self, records: Sequence[Record], *, forget_errors: bool
    ) -> list[_Updates | tuple[str, list[tuple[Any, ...]]]]:
        """The batch, in order, as statements.

        Consecutive plain updates go in one `update_records` (a new one when a run comes
        again); every other record goes by its own statement, consecutive ones of the same
        statement in one executemany (so version 1 then 2 of a run both apply).
        """
        groups: list[_Updates | tuple[str, list[tuple[Any, ...]]]] = []
        for step in stretches(records, _plain_update):
            if isinstance(step, builtins.list):
                updates = _Updates()
                for record in step:
                    updates.add(record, direct=record.workflow_name in self._direct)
                groups.append(updates)
                continue
            query, params = self._params(step, forget_errors=forget_errors)
            last = groups[-1] if groups else None
            if isinstance(last, tuple) and last[0] is query:
                last[1].append(params)
            else:
                groups.append((query, [params]))
        return groups

    # -- reads --------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"schema {self.db.schema}"

    def _record(self, row: Sequence[Any]) -> Record:
        return read_record(row, where=self._where)

    def lookup_many(self, run_ids: Iterable[str]) -> dict[str, Record]:
        """The records of many runs in one query (missing ones are left out)."""
        ids = list(dict.fromkeys(run_ids))
        rows = self.db.fetchall("looking up records", QUERIES["lookup_many"], (ids,))
        return records_by_run(rows, where=self._where)  # an unreadable one: lookup() of that run reports it

    def list(
        self,
        workflow_name: str,
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = "asc",
        filter: RecordFilter | None = None,  # noqa: A002 - the contract's name
    ) -> builtins.list[Record]:
        """Records by creation time (``desc``: newest first), filtered, then paged.

        Unreadable rows are logged and left out.
        """
        direction = sort_direction(order)
        where, params = filter_clause(workflow_name, filter)
        query = QUERIES["list_records"].format(where=where, direction=direction)
        rows = self.db.fetchall("listing records", query, [*params, limit, offset])
        return readable_records(rows, where=self._where, log=logger)

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
            workflow_name, filter, order=order, after=after, seq_column="created_seq"
        )
        query = QUERIES["page_records"].format(where=where, direction=direction)
        rows = self.db.fetchall("paging records", query, [*params, limit + 1])
        return page_from_rows(rows, limit, where=self._where, log=logger)

    def count_runs(self, workflow_name: str, *, filter: RecordFilter | None = None) -> builtins.list[RunCount]:  # noqa: A002
        """The number of matching runs per (workflow, status, status name, run state)."""
        where, params = filter_clause(workflow_name, filter)
        query = QUERIES["count_runs"].format(where=where)
        return count_rows(self.db.fetchall("counting runs", query, params))

    def carries_events_of(self, workflow_name: str, topics: Sequence[str]) -> bool:
        """True when this database's event log is in use for ``workflow_name`` (see `OwnEventLog`)."""
        prefix = topic_prefix(workflow_name)
        row = self.db.fetchone(
            "finding the workflow's events", QUERIES["carries_events_of"], (len(prefix), prefix, list(topics))
        )
        return bool(row[0])

    def snapshots(self, run_id: str) -> builtins.list[Record]:
        """Every stored version of the run, oldest first (unreadable ones logged and left out)."""
        rows = self.db.fetchall("reading snapshots", QUERIES["snapshots"], (run_id,))
        return readable_records(rows, where=self._where, log=logger)

    # -- outbox -------------------------------------------------------------------------

    def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        """Up to ``limit`` outbox events of the workflow, oldest first.

        A row that cannot be read can never be relayed: it is logged and deleted, so it
        does not hold up the rows behind it (the relay would otherwise fail on it forever).
        """
        rows = self.db.fetchall("listing the outbox", QUERIES["list_outbox"], (workflow_name, limit))
        events, unreadable = outbox_from_rows(rows, where=self._where, log=logger)
        if unreadable:
            self.delete_outbox_events(unreadable)
        return events

    def delete_outbox_event(self, id: str) -> None:  # noqa: A002 - the contract's name
        """Remove one relayed outbox event."""
        self.delete_outbox_events((id,))

    def delete_outbox_events(self, ids: Iterable[str]) -> None:
        """Remove relayed outbox events."""
        self.db.execute("deleting outbox events", QUERIES["delete_outbox"], (list(ids),))

    def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Block until a commit announces outbox events for the workflow, or ``timeout``."""
        listener = self.db.listener()
        seen = listener.version(f"o:{workflow_name}")
        if self.list_outbox_events(workflow_name, 1):
            return
        listener.wait(f"o:{workflow_name}", seen, timeout)

    def interrupt_outbox_wait(self, workflow_name: str) -> None:
        """Make this process's waits for the workflow's outbox return now (as a notification would)."""
        self.db.listener().poke(f"o:{workflow_name}")

    # -- error counts ---------------------------------------------------------------------

    def add_error(self, process: str, run_id: str) -> int:
        """Count one step error of (process, run), durably; the count so far.

        Never sent twice: if the connection is lost while the count is being written, its
        outcome is unknown and `PostgresError` is raised (the step runs again and counts
        then) rather than risking one error being counted twice.
        """
        row = self.db.fetchone("counting an error", QUERIES["add_error"], (process, run_id), resend=False)
        return int(row[0]) if row else 1


def _move_cursors(executor: psycopg.Connection[Any], acks: Sequence[CursorMove]) -> None:
    """Save the receivers' cursor moves (in the caller's transaction; a cursor only moves forward)."""
    for ack in acks:
        executor.execute(QUERIES["save_cursor"], (ack.topic, ack.name, *ack.position))
