"""How a run moves: from a step's result to the next stored record.

Building the typed run, turning a result into the next record, storing it (one place
for every writer), and the run-state controller.

Every write in the engine goes through `commit`/`store`, so the version rule (each write
adds exactly 1, checked atomically by the store), the ``workflow_run_state_changes``
metric and the await notification are applied once, the same way for everyone.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from actorflow import watch
from actorflow.errors import (
    ActorflowError,
    CodecError,
    InvalidTransition,
    StepError,
    VersionConflict,
    WorkflowInProgress,
)
from actorflow.record import Record, Run, TypedRecord
from actorflow.runstate import RunState, check_run_state_transition
from actorflow.status import RUN_STATE_UPDATED, SAVE_AND_REPEAT, SKIP, Sentinel

if TYPE_CHECKING:
    from actorflow.workflow import Workflow

__all__ = [
    "AUTO_PAUSE_REASON",
    "ErrorCounts",
    "Write",
    "build_run",
    "change_run_state",
    "commit",
    "error_key",
    "next_record",
    "result_record",
    "store",
    "typed_record",
]

AUTO_PAUSE_REASON = "max error retry threshold hit - automatically paused"
_RETRIES_ON_CONFLICT = 5


class Write(NamedTuple):
    """A record to store, with the run state it moves from (for the metric)."""

    record: Record
    previous: RunState


def error_key(process: str, record: Record) -> str:
    """What step errors are counted under: the process and the visit (the run's version).

    Counting per visit means errors of an earlier visit to a status never add up with a
    later one, even when something else (a callback, a resume) moved the run between
    them; a durable counter keeps counting across restarts within one visit.
    """
    return f"{process}@v{record.meta.version}"


class ErrorCounts:
    """Step errors per (process key, run) in this process's memory (an `ErrorCounter`).

    The memory record store keeps its counts here, and a workflow whose store counts
    none falls back to one. `forget_run` drops a run's counts when its next version is
    stored: every earlier visit's count is stale then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}  # run id -> process key -> count

    def add_error(self, process: str, run_id: str) -> int:
        """Count one more error of (process, run); the count so far."""
        with self._lock:
            counts = self._counts.setdefault(run_id, {})
            counts[process] = counts.get(process, 0) + 1
            return counts[process]

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the errors of (process, run)."""
        with self._lock:
            counts = self._counts.get(run_id)
            if counts is not None:
                counts.pop(process, None)
                if not counts:
                    del self._counts[run_id]

    def forget_run(self, run_id: str) -> None:
        """Forget every count of ``run_id``."""
        with self._lock:
            self._counts.pop(run_id, None)


def typed_record(wf: Workflow[Any, Any], record: Record) -> TypedRecord[Any, Any]:
    """The record with its object decoded and its status as the workflow's enum."""
    return TypedRecord(
        workflow_name=record.workflow_name,
        foreign_id=record.foreign_id,
        run_id=record.run_id,
        run_state=record.run_state,
        status=wf._status_of(record.status),  # noqa: SLF001 - engine internals
        object=wf.codec.decode(record.object),
        created_at=record.created_at,
        updated_at=record.updated_at,
        meta=record.meta,
    )


def build_run(wf: Workflow[Any, Any], record: Record) -> Run[Any, Any]:
    """The `Run` a user function receives; an Initiated run is seen as Running."""
    state = RunState.RUNNING if record.run_state is RunState.INITIATED else record.run_state
    return Run(
        workflow_name=record.workflow_name,
        foreign_id=record.foreign_id,
        run_id=record.run_id,
        run_state=state,
        status=wf._status_of(record.status),  # noqa: SLF001 - engine internals
        object=wf.codec.decode(record.object),
        created_at=record.created_at,
        updated_at=record.updated_at,
        meta=record.meta,
    )


def next_record(
    wf: Workflow[Any, Any],
    record: Record,
    *,
    run_state: RunState,
    status: int | None = None,
    data: bytes | None = None,
    reason: str | None = None,
) -> Write:
    """The next version of ``record``: version + 1, ``updated_at`` now, the rest as given."""
    new_status = record.status if status is None else int(status)
    meta = record.meta
    meta = dataclasses.replace(
        meta,
        version=meta.version + 1,
        run_state_reason=meta.run_state_reason if reason is None else reason,
        status_description=wf._status_description(new_status),  # noqa: SLF001
    )
    new = dataclasses.replace(
        record,
        run_state=run_state,
        status=new_status,
        object=record.object if data is None else data,
        updated_at=wf.clock.now(),
        meta=meta,
    )
    return Write(new, record.run_state)


def result_record(
    wf: Workflow[Any, Any],
    record: Record,
    run: Run[Any, Any],
    result: Any,
    allowed: Sequence[int],
) -> Write | None:
    """The record a user function's result asks for; ``None`` to skip.

    Raises `StepError` when the result is not one of ``allowed`` (or a sentinel), or the
    object no longer encodes: nothing is stored in that case.
    """
    if isinstance(result, Sentinel):
        if result is SKIP or result == SKIP:
            return None
        if result == RUN_STATE_UPDATED:
            control = run._control  # noqa: SLF001 - the run's own request
            if control.run_state is None:
                msg = "the step returned the run-state sentinel without calling run.pause() or run.cancel()"
                raise StepError(msg, run_id=record.run_id)
            return next_record(wf, record, run_state=control.run_state, reason=control.reason)
        if result == SAVE_AND_REPEAT:
            data = _encode(wf, run)
            return next_record(wf, record, run_state=RunState.RUNNING, data=data)
    if result is None or not isinstance(result, int):
        msg = f"the function returned {result!r}; return a status or a run.skip()/pause()/cancel() result"
        raise StepError(msg, run_id=record.run_id)
    status = int(result)
    if status not in allowed:
        names = ", ".join(wf._status_description(s) for s in allowed)  # noqa: SLF001
        msg = (
            f"the function returned {wf._status_description(status)!r}, which is not one of its "  # noqa: SLF001
            f"destinations ({names})"
        )
        raise StepError(msg, run_id=record.run_id) from InvalidTransition(msg)
    data = _encode(wf, run)
    state = RunState.COMPLETED if wf.graph.is_terminal(status) else RunState.RUNNING
    return next_record(wf, record, run_state=state, status=status, data=data)


def _encode(wf: Workflow[Any, Any], run: Run[Any, Any]) -> bytes:
    try:
        return wf.codec.encode(run.object)
    except Exception as exc:
        msg = f"the run's object does not encode: {exc}"
        raise StepError(msg, run_id=run.run_id) from exc


def commit(wf: Workflow[Any, Any], writes: Sequence[Write]) -> list[Exception | None]:
    """Store many records (group commit when the store can); one result per record.

    A `VersionConflict` or `WorkflowInProgress` is returned for its record and never undoes
    the others; any other error is raised (the store itself failed).
    """
    if not writes:
        return []
    batch = wf._batch_store  # noqa: SLF001
    results: list[Exception | None]
    if batch is not None and len(writes) > 1:
        results = batch.store_many([w.record for w in writes])
    else:
        results = []
        for write in writes:
            try:
                wf.record_store.store(write.record)
            except (VersionConflict, WorkflowInProgress) as exc:
                results.append(exc)
            else:
                results.append(None)
    for write, error in zip(writes, results, strict=True):
        if error is None:
            _stored(wf, write)
        elif not isinstance(error, VersionConflict | WorkflowInProgress):
            raise error
    return results


def store(wf: Workflow[Any, Any], write: Write) -> None:
    """Store one record, raising `VersionConflict`/`WorkflowInProgress` as the store does."""
    wf.record_store.store(write.record)
    _stored(wf, write)


def _stored(wf: Workflow[Any, Any], write: Write) -> None:
    wf._count_run_state_change(write.previous, write.record.run_state)  # noqa: SLF001
    watch.publish(write.record)


def change_run_state(
    wf: Workflow[Any, Any],
    run_id: str,
    new_state: RunState,
    reason: str | None,
    *,
    check: bool = True,
) -> Record:
    """The controller: move a run to ``new_state`` through the transition table.

    Reads the record, checks the table, writes version + 1; on a concurrent write it
    reads again and re-checks, so the action applies to the run as it is.
    """
    for _ in range(_RETRIES_ON_CONFLICT):
        record = wf.record_store.lookup(run_id)
        if check:
            check_run_state_transition(record.run_state, new_state, run_id=run_id)
        write = next_record(wf, record, run_state=new_state, reason=reason)
        try:
            store(wf, write)
        except VersionConflict:
            continue
        return write.record
    msg = f"run {run_id} kept changing; could not change its run state to {new_state}"
    raise ActorflowError(msg, run_id=run_id)


def decode_or_none(wf: Workflow[Any, Any], record: Record) -> TypedRecord[Any, Any] | None:
    """The typed record, or ``None`` when its object does not decode (e.g. data deleted)."""
    try:
        return typed_record(wf, record)
    except CodecError:
        return None
