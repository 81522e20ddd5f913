"""Rows <-> records, timeouts, outbox rows and events, filter clauses, header encoding.

Both SQL adapters read their rows through these functions, so a row one of them can
not read is treated the same way by the other: an unreadable record is `CorruptRecord`
for a lookup and skipped (with a warning) in a list, an unreadable timeout is skipped,
an unreadable outbox row is reported for deletion, an unreadable event is handed over
as malformed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from actorflow.capabilities import RecordPage, RunCount
from actorflow.errors import CorruptRecord, InvalidCursor
from actorflow.event import Event, OutboxEvent, event_headers, event_topic, make_outbox_event, shard_hash
from actorflow.protocols import RecordFilter, TimeoutRecord, check_timeout_visit
from actorflow.record import Record, RecordMeta
from actorflow.runstate import RunState

__all__ = [
    "RECORD_COLUMNS",
    "TIMEOUT_COLUMNS",
    "count_rows",
    "decode_headers",
    "decode_run_ids",
    "encode_headers",
    "event_from_row",
    "event_row",
    "filter_clause",
    "outbox_from_rows",
    "outbox_row",
    "page_clause",
    "page_from_rows",
    "read_record",
    "readable_records",
    "readable_timeouts",
    "record_event_row",
    "record_from_row",
    "record_params",
    "records_by_run",
    "timeout_from_row",
    "timeout_params",
    "update_params",
]

# The order of the columns every record query selects, and record_params() supplies.
RECORD_COLUMNS = (
    "workflow_name",
    "foreign_id",
    "run_id",
    "run_state",
    "status",
    "object",
    "created_at",
    "updated_at",
    "version",
    "run_state_reason",
    "status_description",
    "trace_origin",
)

TIMEOUT_COLUMNS = (
    "id",
    "workflow_name",
    "foreign_id",
    "run_id",
    "status",
    "completed",
    "expire_at",
    "created_at",
    "timeout_index",
    "record_version",
)

TimeIn = Callable[[Any], datetime]


def _same(value: Any) -> datetime:
    """``value`` if the driver read it as a time (PostgreSQL), else ValueError."""
    if not isinstance(value, datetime):
        msg = f"a stored time must be a timestamp, got {value!r}"
        raise TypeError(msg)
    return value


def record_params(record: Record, time_out: Callable[[datetime], Any] = _same) -> tuple[Any, ...]:
    """A record's values in `RECORD_COLUMNS` order (``time_out`` converts timestamps)."""
    meta = record.meta
    return (
        record.workflow_name,
        record.foreign_id,
        record.run_id,
        int(record.run_state),
        int(record.status),
        bytes(record.object),
        time_out(record.created_at),
        time_out(record.updated_at),
        meta.version,
        meta.run_state_reason,
        meta.status_description,
        meta.trace_origin,
    )


def update_params(record: Record, time_out: Callable[[datetime], Any] = _same) -> tuple[Any, ...]:
    """The values of a record's next version for ``UPDATE``: what a version changes, then the condition.

    In order: run state, status, object, ``updated_at``, version, reason, description,
    trace origin; then the run id and the version the update is conditioned on
    (``version - 1``).
    """
    meta = record.meta
    return (
        int(record.run_state),
        int(record.status),
        bytes(record.object),
        time_out(record.updated_at),
        meta.version,
        meta.run_state_reason,
        meta.status_description,
        meta.trace_origin,
        record.run_id,
        meta.version - 1,
    )


def timeout_params(
    workflow_name: str,
    foreign_id: str,
    run_id: str,
    status: int,
    expire_at: datetime,
    created_at: datetime | None,
    index: int | None,
    record_version: int | None,
    time_out: Callable[[datetime], Any] = _same,
) -> tuple[Any, ...]:
    """A new timeout's values, `TIMEOUT_COLUMNS` from ``workflow_name`` on (``created_at`` by default: now).

    A bad ``index`` or ``record_version`` is refused here (`check_timeout_visit`), before anything is stored.
    """
    check_timeout_visit(index, record_version)
    created = created_at or datetime.now(UTC)
    return (
        workflow_name,
        foreign_id,
        run_id,
        int(status),
        time_out(expire_at),
        time_out(created),
        index,
        record_version,
    )


def event_row(topic: str, run_id: str, event_type: int, headers: Mapping[str, str], created_at: Any) -> tuple[Any, ...]:
    """An event log row: topic, run id, type, headers (JSON), created_at, shard hash.

    The shard hash is the engine's (`actorflow.event.shard_hash`), so a shard's filter in
    SQL (``shard_hash % n = i``) agrees with `shard_of` everywhere.
    """
    return (topic, run_id, int(event_type), encode_headers(headers), created_at, shard_hash(run_id))


def record_event_row(record: Record, time_out: Callable[[datetime], Any] = _same) -> tuple[Any, ...]:
    """The event log row a stored record produces (written in the record's transaction)."""
    return event_row(
        event_topic(record), record.run_id, record.status, event_headers(record), time_out(record.updated_at)
    )


def outbox_row(record: Record, time_out: Callable[[datetime], Any] = _same) -> tuple[Any, ...]:
    """The outbox row a stored record produces: id, workflow, run id, type, headers (JSON), created_at."""
    event = make_outbox_event(record)
    return (
        event.id,
        event.workflow_name,
        event.run_id,
        event.type,
        encode_headers(event.headers),
        time_out(event.created_at),
    )


def record_from_row(row: Sequence[Any], time_in: TimeIn = _same) -> Record:
    """A `Record` from a row in `RECORD_COLUMNS` order; ValueError when the row is not one."""
    (
        workflow_name,
        foreign_id,
        run_id,
        run_state,
        status,
        obj,
        created_at,
        updated_at,
        version,
        reason,
        description,
        origin,
    ) = row
    return Record(
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=run_id,
        run_state=RunState(run_state),
        status=int(status),
        object=bytes(obj),
        created_at=time_in(created_at),
        updated_at=time_in(updated_at),
        meta=RecordMeta(
            version=int(version),
            run_state_reason=reason or "",
            status_description=description or "",
            trace_origin=origin or "",
        ),
    )


def timeout_from_row(row: Sequence[Any], time_in: TimeIn = _same) -> TimeoutRecord:
    """A `TimeoutRecord` from a row in `TIMEOUT_COLUMNS` order; ValueError when the row is not one."""
    timeout_id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at, index, version = row
    if not isinstance(run_id, str) or type(status) is not int:
        msg = f"run id {run_id!r} and status {status!r} are not a string and an integer"
        raise ValueError(msg)
    if not all(v is None or type(v) is int for v in (index, version)):
        msg = f"timeout index {index!r} and record version {version!r} are not integers"
        raise ValueError(msg)
    return TimeoutRecord(
        id=int(timeout_id),
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=run_id,
        status=int(status),
        completed=bool(completed),
        expire_at=time_in(expire_at),
        created_at=time_in(created_at),
        index=index,
        record_version=version,
    )


def sort_direction(order: str) -> str:
    """``ASC`` or ``DESC`` for a `RecordStore.list` order, refusing anything else."""
    if order not in ("asc", "desc"):
        msg = f"order must be 'asc' or 'desc', got {order!r}"
        raise ValueError(msg)
    return order.upper()


def filter_clause(
    workflow_name: str, record_filter: RecordFilter | None, time_out: Callable[[datetime], Any] = _same
) -> tuple[str, list[Any]]:
    """A ``WHERE`` condition (without the keyword; ``%s`` placeholders) and its parameters."""
    conditions: list[str] = []
    params: list[Any] = []
    if workflow_name:
        conditions.append("workflow_name = %s")
        params.append(workflow_name)
    f = record_filter or RecordFilter()
    for column, values in (
        ("foreign_id", f.foreign_ids),
        ("status", [int(s) for s in f.statuses]),
        ("status_description", list(f.status_names)),
        ("run_state", [int(s) for s in f.run_states]),
    ):
        if values:
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            params.extend(values)
    if f.foreign_id_prefix:
        # Not LIKE: SQLite's is case-insensitive, and % or _ in the prefix would be wildcards.
        conditions.append("substr(foreign_id, 1, %s) = %s")
        params.extend((len(f.foreign_id_prefix), f.foreign_id_prefix))
    if f.created_after is not None:
        conditions.append("created_at > %s")
        params.append(time_out(f.created_after))
    if f.created_before is not None:
        conditions.append("created_at < %s")
        params.append(time_out(f.created_before))
    return (" AND ".join(conditions) or "TRUE"), params


# -- pages by cursor (RecordPages) ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"(-?\d{1,20})\.(\d{1,20})")


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def page_clause(
    workflow_name: str,
    record_filter: RecordFilter | None,
    *,
    order: str,
    after: str | None,
    seq_column: str,
    time_out: Callable[[datetime], Any] = _same,
) -> tuple[str, str, list[Any]]:
    """``WHERE`` condition, direction and parameters of a page after the cursor ``after``.

    Pages follow `RecordStore.list`'s order, (``created_at``, ``seq_column``), so a cursor
    is the last row's pair: ``<created_at in µs since the epoch>.<seq>``.
    """
    direction = sort_direction(order)
    where, params = filter_clause(workflow_name, record_filter, time_out)
    if after is not None:
        found = _CURSOR.fullmatch(after) if isinstance(after, str) else None
        if found is None:
            msg = f"not a page cursor of this store: {after!r:.80}"
            raise InvalidCursor(msg)
        created = _EPOCH + timedelta(microseconds=int(found[1]))
        where += f" AND (created_at, {seq_column}) {'>' if direction == 'ASC' else '<'} (%s, %s)"
        params.extend((time_out(created), int(found[2])))
    return where, direction, params


def page_from_rows(
    rows: Sequence[Sequence[Any]], limit: int, time_in: TimeIn = _same, *, where: str, log: logging.Logger
) -> RecordPage:
    """The page of ``rows`` (record columns, then the sequence; up to ``limit + 1`` rows fetched)."""
    shown = rows[:limit]
    records = readable_records((row[:-1] for row in shown), time_in, where=where, log=log)
    if len(rows) <= limit or not shown:
        return RecordPage(records, None)
    last = shown[-1]
    created = time_in(last[RECORD_COLUMNS.index("created_at")])
    return RecordPage(records, f"{_micros(created)}.{int(last[-1])}")


def count_rows(rows: Iterable[Sequence[Any]]) -> list[RunCount]:
    """`RunCount`s of rows (workflow, status, status name, run state, count); an unknown run state is left out."""
    counts = []
    for workflow_name, status, name, run_state, count in rows:
        try:
            state = RunState(int(run_state))
        except ValueError:
            continue
        counts.append(RunCount(str(workflow_name), int(status), str(name), state, int(count)))
    return counts


def decode_run_ids(raw: Any) -> list[str]:
    """The run ids of an in-flight note (a JSON list); an unreadable note is treated as empty."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


_HEADERS_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # json.dumps would build one per call


def encode_headers(headers: Mapping[str, str]) -> str:
    """Headers as compact JSON text."""
    return _HEADERS_JSON.encode(dict(headers))


def decode_headers(raw: Any) -> dict[str, str]:
    """Headers from JSON text (or an already-decoded mapping); ValueError when malformed."""
    if isinstance(raw, str | bytes | bytearray):
        value = json.loads(raw)  # a JSON object's keys are strings: only its values need a look
        readable = type(value) is dict and all(type(v) is str for v in value.values())
    else:
        value = raw
        readable = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if not readable:
        msg = f"event headers must be a JSON object of strings, got {raw!r}"
        raise ValueError(msg)
    headers: dict[str, str] = value
    return headers


# -- reading many rows: what to do with one that cannot be read ----------------------------


def read_record(row: Sequence[Any], time_in: TimeIn = _same, *, where: str) -> Record:
    """The record of ``row``; `CorruptRecord` naming the run (and ``where``) when it is not one."""
    try:
        return record_from_row(row, time_in)
    except (ValueError, TypeError) as exc:
        run_id = row[2] if len(row) > 2 else None  # noqa: PLR2004 - run_id's place in RECORD_COLUMNS
        msg = f"the stored row of run {run_id} in {where} is not a record: {exc}"
        raise CorruptRecord(msg, run_id=run_id) from exc


def readable_records(
    rows: Iterable[Sequence[Any]], time_in: TimeIn = _same, *, where: str, log: logging.Logger
) -> list[Record]:
    """The records of ``rows``; an unreadable row is logged and left out (lists never fail on one)."""
    out: list[Record] = []
    for row in rows:
        try:
            out.append(read_record(row, time_in, where=where))
        except CorruptRecord as exc:
            log.warning("%s: skipped an unreadable record row: %s", where, exc)
    return out


def records_by_run(rows: Iterable[Sequence[Any]], time_in: TimeIn = _same, *, where: str) -> dict[str, Record]:
    """The records of ``rows`` by run id; unreadable ones left out silently (a lookup reports them)."""
    found: dict[str, Record] = {}
    for row in rows:
        try:
            record = read_record(row, time_in, where=where)
        except CorruptRecord:
            continue
        found[record.run_id] = record
    return found


def readable_timeouts(
    rows: Iterable[Sequence[Any]], time_in: TimeIn = _same, *, where: str, log: logging.Logger
) -> list[TimeoutRecord]:
    """The timeouts of ``rows``; an unreadable row is logged and left out, so it never stops the poller."""
    out: list[TimeoutRecord] = []
    for row in rows:
        try:
            out.append(timeout_from_row(row, time_in))
        except (ValueError, TypeError) as exc:
            log.warning("%s: skipped unreadable timeout %r: %s", where, row[0] if row else None, exc)
    return out


def outbox_from_rows(
    rows: Iterable[Sequence[Any]], time_in: TimeIn = _same, *, where: str, log: logging.Logger
) -> tuple[list[OutboxEvent], list[Any]]:
    """The outbox events of ``rows``, and the ids of the rows that cannot be read.

    The rows are (id, workflow, run id, type, headers, created_at). A row that cannot be
    read can never be relayed: the caller deletes it (it is logged here as an error), so
    it does not hold up the rows behind it forever.
    """
    out: list[OutboxEvent] = []
    unreadable: list[Any] = []
    for outbox_id, name, run_id, event_type, headers, created_at in rows:
        try:
            if type(event_type) is not int or not isinstance(run_id, str):
                msg = f"run id {run_id!r} and type {event_type!r} are not a string and an integer"
                raise ValueError(msg)  # noqa: TRY301 - one handler for every malformed field
            out.append(OutboxEvent(outbox_id, name, run_id, event_type, decode_headers(headers), time_in(created_at)))
        except (ValueError, TypeError) as exc:
            log.error("%s: dropped unreadable outbox event %s: %s", where, outbox_id, exc)  # noqa: TRY400
            unreadable.append(outbox_id)
    return out, unreadable


def event_from_row(row: Sequence[Any], time_in: TimeIn = _same, *, now: Callable[[], datetime], where: str) -> Event:
    """The event of a row (id, run id, type, headers, created_at); an unreadable row becomes a malformed event.

    It is handed over, not dropped: the engine reports and counts it and acknowledges
    past it (reading it again would fail the same way forever). ``now`` stamps it when
    even its time cannot be read.
    """
    event_id, run_id, event_type, headers, created_at = row
    try:
        if not isinstance(run_id, str) or type(event_type) is not int:
            msg = f"run id {run_id!r} and type {event_type!r} are not a string and an integer"
            raise ValueError(msg)  # noqa: TRY301 - one handler for every malformed field
        return Event(event_id, run_id, event_type, decode_headers(headers), time_in(created_at))
    except (ValueError, TypeError) as exc:
        try:
            when = time_in(created_at)
        except (ValueError, TypeError):
            when = now()
        return Event(event_id, str(run_id), 0, {}, when, malformed=f"unreadable row in {where}: {exc}")
