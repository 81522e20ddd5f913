"""Rows <-> records and timeouts, filter clauses, header encoding, for both SQL adapters."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from actorflow.protocols import RecordFilter, TimeoutRecord
from actorflow.record import Record, RecordMeta
from actorflow.runstate import RunState

__all__ = [
    "RECORD_COLUMNS",
    "TIMEOUT_COLUMNS",
    "decode_headers",
    "decode_run_ids",
    "encode_headers",
    "filter_clause",
    "record_from_row",
    "record_params",
    "timeout_from_row",
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

TIMEOUT_COLUMNS = ("id", "workflow_name", "foreign_id", "run_id", "status", "completed", "expire_at", "created_at")

TimeIn = Callable[[Any], datetime]


def _same(value: Any) -> datetime:
    result: datetime = value
    return result


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
    """A `TimeoutRecord` from a row in `TIMEOUT_COLUMNS` order."""
    timeout_id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at = row
    return TimeoutRecord(
        id=int(timeout_id),
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=run_id,
        status=int(status),
        completed=bool(completed),
        expire_at=time_in(expire_at),
        created_at=time_in(created_at),
    )


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
        ("run_state", [int(s) for s in f.run_states]),
    ):
        if values:
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            params.extend(values)
    if f.created_after is not None:
        conditions.append("created_at > %s")
        params.append(time_out(f.created_after))
    if f.created_before is not None:
        conditions.append("created_at < %s")
        params.append(time_out(f.created_before))
    return (" AND ".join(conditions) or "TRUE"), params


def decode_run_ids(raw: Any) -> list[str]:
    """The run ids of an in-flight note (a JSON list); an unreadable note is treated as empty."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def encode_headers(headers: Mapping[str, str]) -> str:
    """Headers as compact JSON text."""
    return json.dumps(dict(headers), separators=(",", ":"), sort_keys=True)


def decode_headers(raw: Any) -> dict[str, str]:
    """Headers from JSON text (or an already-decoded mapping); ValueError when malformed."""
    value = json.loads(raw) if isinstance(raw, str | bytes | bytearray) else raw
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        msg = f"event headers must be a JSON object of strings, got {raw!r}"
        raise ValueError(msg)
    return value
