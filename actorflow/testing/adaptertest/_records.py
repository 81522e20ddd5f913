"""Records and assertions the record-store suite shares.

The data is the original's (``adapters/adaptertest/recordstore.go``): foreign id
``Andrew Wormald``, workflow ``my_workflow``, status 1 ``Started``, run state Initiated.
"""

# ruff: noqa: S101 - a pytest suite asserts (pytest rewrites these asserts, see __init__)

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from actorflow.protocols import RecordStore
from actorflow.record import Record, RecordMeta
from actorflow.runstate import RunState

__all__ = [
    "FOREIGN_ID",
    "SECOND_WORKFLOW",
    "STATUS_END",
    "STATUS_MIDDLE",
    "STATUS_STARTED",
    "WORKFLOW",
    "RecordStoreFactory",
    "assert_same_record",
    "dummy_record",
    "next_version",
]

RecordStoreFactory = Callable[[], RecordStore]
"""Makes a fresh, empty record store (the suite's ``make_record_store`` fixture)."""

WORKFLOW = "my_workflow"
SECOND_WORKFLOW = "my_second_workflow"
FOREIGN_ID = "Andrew Wormald"
STATUS_STARTED = 1
STATUS_MIDDLE = 2
STATUS_END = 3

_DESCRIPTIONS = {STATUS_STARTED: "Started", STATUS_MIDDLE: "Middle", STATUS_END: "End"}


def dummy_record(
    workflow_name: str = WORKFLOW,
    *,
    foreign_id: str = FOREIGN_ID,
    status: int = STATUS_STARTED,
    run_state: RunState = RunState.INITIATED,
    created_at: datetime | None = None,
) -> Record:
    """A new run at version 1, as the original's ``dummyWireRecord`` makes it.

    Every meta field is set and the timestamps carry microseconds and a timezone, so an
    equality check proves the store round-trips each field exactly.
    """
    now = created_at or datetime.now(UTC)
    return Record(
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=str(uuid.uuid4()),
        run_state=run_state,
        status=status,
        object=json.dumps({"name": foreign_id}).encode(),
        created_at=now,
        updated_at=now,
        meta=RecordMeta(
            version=1,
            run_state_reason="",
            status_description=_DESCRIPTIONS.get(status, str(status)),
            trace_origin="adaptertest/_records.py:dummy_record",
        ),
    )


def next_version(
    record: Record,
    *,
    status: int | None = None,
    run_state: RunState | None = None,
    obj: bytes | None = None,
    reason: str | None = None,
) -> Record:
    """The record as the engine would write it next: version + 1, ``updated_at`` later."""
    meta = dataclasses.replace(
        record.meta,
        version=record.meta.version + 1,
        run_state_reason=record.meta.run_state_reason if reason is None else reason,
        status_description=_DESCRIPTIONS.get(status, str(status))
        if status is not None
        else record.meta.status_description,
    )
    return dataclasses.replace(
        record,
        status=record.status if status is None else status,
        run_state=record.run_state if run_state is None else run_state,
        object=record.object if obj is None else obj,
        updated_at=record.updated_at + timedelta(milliseconds=1, microseconds=7),
        meta=meta,
    )


def assert_same_record(got: Record, want: Record) -> None:
    """``got`` is ``want`` field for field, with the contract's types.

    Times are compared exactly: the stores keep the times the engine gives them (the
    original allowed 10 s because its SQL store stamped ``now()`` itself).
    """
    assert isinstance(got, Record), f"a store returns actorflow.Record, got {type(got)!r}"
    assert type(got.object) is bytes, f"Record.object must be bytes, got {type(got.object)!r}"
    assert isinstance(got.run_state, RunState), f"Record.run_state must be a RunState, got {got.run_state!r}"
    assert type(got.status) is int, f"Record.status must be an int, got {type(got.status)!r}"
    assert isinstance(got.meta, RecordMeta), f"Record.meta must be a RecordMeta, got {type(got.meta)!r}"
    assert got.created_at.tzinfo is not None, "created_at must be timezone-aware"
    assert got.updated_at.tzinfo is not None, "updated_at must be timezone-aware"
    assert got == want
