"""What a user asks of a workflow: trigger, await, call back, and the run-state controller.

The `Workflow` facade delegates each public method here; the schedule process triggers
through `trigger` too. Every write goes through the engine's `Writer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from actorflow._trace import trace_origin
from actorflow.codec import check_size
from actorflow.errors import (
    ActorflowError,
    AwaitTimeout,
    InvalidTransition,
    StepError,
    VersionConflict,
    WorkflowInProgress,
)
from actorflow.record import Record, RecordMeta, Run, check_foreign_id
from actorflow.runstate import RunState, check_run_state_transition
from actorflow.specs import CallbackSpec
from actorflow.status import status_value

from .core import Engine, Failed
from .transitions import Write

__all__ = [
    "await_status",
    "await_status_async",
    "callback",
    "change_run_state",
    "check_schedule",
    "control_run_state",
    "trigger",
    "trigger_many",
]

R = TypeVar("R")

# Run states a status counts as reached in (a pause or a cancel never satisfies a wait).
_REACHED = frozenset({RunState.INITIATED, RunState.RUNNING, RunState.COMPLETED})
_RETRIES_ON_CONFLICT = 5
_SHOWN = 5  # foreign ids an error message names
_PAIR = 2  # a trigger_many item given as (foreign_id, initial_value)


def trigger(engine: Engine[Any, Any], foreign_id: str, initial_value: Any = None, start_at: Any = None) -> str:
    """Store version 1 of a new run of ``foreign_id``; its run id (see `Workflow.trigger`)."""
    if engine.tracing is not None:
        with engine.tracing.trigger(engine.name, foreign_id) as traceparent:
            return _trigger(engine, foreign_id, initial_value, start_at, traceparent)
    return _trigger(engine, foreign_id, initial_value, start_at, "")


def _trigger(engine: Engine[Any, Any], foreign_id: str, initial_value: Any, start_at: Any, traceparent: str) -> str:
    record = _first_record(engine, foreign_id, initial_value, _status(engine, start_at, "start_at"), traceparent)
    engine.writer.store(Write(record, RunState.UNKNOWN))
    return record.run_id


def trigger_many(engine: Engine[Any, Any], items: Iterable[Any], start_at: Any = None) -> list[str]:
    """Store version 1 of a run for each item, in one commit; their run ids (see `Workflow.trigger_many`)."""
    if engine.tracing is not None:
        with engine.tracing.trigger(engine.name, None) as traceparent:  # one span, one trace, for the batch
            return _trigger_many(engine, items, start_at, traceparent)
    return _trigger_many(engine, items, start_at, "")


def _trigger_many(engine: Engine[Any, Any], items: Iterable[Any], start_at: Any, traceparent: str) -> list[str]:
    start_at = _status(engine, start_at, "start_at")
    records = []
    for item in items:
        if isinstance(item, tuple) and len(item) == _PAIR:
            foreign_id, initial_value = item
        else:  # a foreign id alone (checked below: anything but a str is refused)
            foreign_id, initial_value = item, None
        records.append(_first_record(engine, foreign_id, initial_value, start_at, traceparent))
    results = engine.writer.commit([Write(record, RunState.UNKNOWN) for record in records])
    refused = [(record.foreign_id, error) for record, error in zip(records, results, strict=True) if error is not None]
    if refused:
        stored = [record.run_id for record, error in zip(records, results, strict=True) if error is None]
        shown = ", ".join(repr(fid) for fid, _ in refused[:_SHOWN]) + (" ..." if len(refused) > _SHOWN else "")
        msg = f"{len(refused)} of {len(records)} runs not started, a run of each in progress: {shown}"
        raise WorkflowInProgress(msg, foreign_ids=[fid for fid, _ in refused], run_ids=stored)
    return [record.run_id for record in records]


def _status(engine: Engine[Any, Any], status: Any, argument: str) -> int | None:
    """``status`` as an int when it is of the workflow's enum (`status_value`); ``None`` kept."""
    return None if status is None else status_value(status, engine.config.status_type, argument)


def _first_record(
    engine: Engine[Any, Any], foreign_id: str, initial_value: Any, start_at: int | None, traceparent: str
) -> Record:
    """A new run's version 1, checked (the foreign id, the start status, the object encodes); nothing stored.

    ``start_at`` is already checked against the workflow's enum (`_status`, once per call of the caller);
    ``traceparent``, when traced, is the trigger span's, stored with the run (`actorflow.otel`).
    """
    config = engine.config
    check_foreign_id(foreign_id)
    start = config.default_start if start_at is None else start_at
    config.graph.require(start)
    describe = engine.transitions.describe
    if config.graph.is_terminal(start):
        msg = f"cannot start a run at terminal status {describe(start)!r}"
        raise InvalidTransition(msg, status=start)
    data = _initial_object(engine, initial_value)
    now = engine.clock.now()
    return Record(
        workflow_name=engine.name,
        foreign_id=foreign_id,
        run_id=str(uuid.uuid4()),
        run_state=RunState.INITIATED,
        status=start,
        object=data,
        created_at=now,
        updated_at=now,
        meta=RecordMeta(version=1, status_description=describe(start), trace_origin=_origin(engine, traceparent)),
    )


def _initial_object(engine: Engine[Any, Any], initial_value: Any) -> bytes:
    """The encoded first object of a run (the type's default for ``None``); the codec's errors as they come."""
    config = engine.config
    return config.codec.encode(config.object_type() if initial_value is None else initial_value)


def check_schedule(engine: Engine[Any, Any], foreign_id: Any, initial_value: Any) -> None:
    """Refuse, at registration, what every trigger of a schedule would refuse (as `trigger` does).

    `InvalidForeignId` for the foreign id, `ObjectTypeError` / `CodecError` /
    `ObjectTooLarge` for the initial value: raised by ``wf.schedule`` itself, not logged
    by a node at each slot for ever.
    """
    check_foreign_id(foreign_id)
    _initial_object(engine, initial_value)


def _origin(engine: Engine[Any, Any], traceparent: str) -> str:
    origin = trace_origin()
    return engine.tracing.stamp(origin, traceparent) if traceparent else origin


def await_status(engine: Engine[Any, Any], foreign_id: str, run_id: str, status: Any, timeout: float) -> Run[Any, Any]:
    """The run as it was at ``status``, once it is or has been there (see `Workflow.await_status`)."""
    reached = _reached_by(engine, foreign_id, status)
    deadline = time.monotonic() + timeout
    poll = engine.config.defaults.polling_frequency
    with engine.watch.watch(run_id) as waiter:
        found = reached(engine.history(run_id))
        while found is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _await_timeout(engine, run_id, status, timeout)
            records = waiter.take(min(remaining, poll))
            # Writes by other processes never reach the waiter: poll the store too.
            found = reached(records) if records else reached(engine.history(run_id))
    return engine.transitions.run(found, as_stored=True)


def _history_reached(
    engine: Engine[Any, Any], run_id: str, reached: Callable[[list[Record]], Record | None]
) -> Record | None:
    """``reached`` of the run's stored history (a blocking read, and a write when the run is corrupt)."""
    return reached(engine.history(run_id))


async def await_status_async(
    engine: Engine[Any, Any], foreign_id: str, run_id: str, status: Any, limit: float
) -> Run[Any, Any]:
    """`await_status` on the caller's event loop: woken by the engine's own writes, the store read in a thread."""
    reached = _reached_by(engine, foreign_id, status)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    poll = engine.config.defaults.polling_frequency
    wake = asyncio.Event()
    with engine.watch.watch(run_id) as waiter:
        waiter.notify = lambda: loop.call_soon_threadsafe(wake.set)  # a write of this engine wakes the loop
        found = await asyncio.to_thread(_history_reached, engine, run_id, reached)
        while found is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _await_timeout(engine, run_id, status, limit)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, poll)):
                    await wake.wait()
            wake.clear()
            records = waiter.take(0)
            found = reached(records) if records else await asyncio.to_thread(_history_reached, engine, run_id, reached)
    return engine.transitions.run(found, as_stored=True)


def _reached_by(engine: Engine[Any, Any], foreign_id: str, status: Any) -> Callable[[list[Record]], Record | None]:
    """The first of some records at ``status`` (checked against the workflow) in a run state that counts.

    When none is, and the newest of them has a status outside the workflow's enum, the
    run can never get there (no consumer reads that status's topic): `CorruptRecord`
    at once, the run reported and paused (`_refuse_corrupt`), instead of a wait for the
    whole timeout.
    """
    target = status_value(status, engine.config.status_type, "status")
    engine.config.graph.require(target)

    def reached(records: list[Record]) -> Record | None:
        for record in records:
            if record.status == target and record.foreign_id == foreign_id and record.run_state in _REACHED:
                return record
        if records:
            _refuse_corrupt(engine, "await", max(records, key=lambda r: r.meta.version))
        return None

    return reached


def _refuse_corrupt(engine: Engine[Any, Any], process: str, record: Record) -> None:
    """Raise `CorruptRecord` if ``record``'s stored status is not the workflow's, after reporting it.

    A run still moving is paused (`Engine.fail`: the error log, ``actorflow_corrupt_records``,
    the reason); a paused or finished one is left as it is.
    """
    corrupt = engine.unknown_status(record)
    if corrupt is None:
        return
    if not (record.run_state.stopped or record.run_state.finished):
        engine.fail_now(process, record, corrupt, engine.config.defaults.pause_after_err_count)
    raise corrupt


def _await_timeout(engine: Engine[Any, Any], run_id: str, status: Any, timeout: float) -> AwaitTimeout:
    target = status_value(status, engine.config.status_type, "status")
    msg = f"run {run_id} did not reach {engine.transitions.describe(target)!r} within {timeout}s"
    return AwaitTimeout(msg, run_id=run_id, status=status)


def callback(engine: Engine[Any, Any], foreign_id: str, status: Any, payload: bytes | None) -> None:
    """Hand ``payload`` to the callbacks of ``status`` (see `Workflow.callback`)."""
    check_foreign_id(foreign_id)
    status = status_value(status, engine.config.status_type, "status")
    engine.config.graph.require(status)
    data = b"" if payload is None else payload
    check_size(data, engine.config.max_object_bytes, "the callback payload")  # ObjectTooLarge, nothing done
    specs = engine.config.callbacks.get(int(status), ())
    if not specs:
        engine.record_store.latest(engine.name, foreign_id)  # an unknown foreign id still raises
        return
    describe = engine.transitions.describe(int(status))
    for spec in specs:
        attempt = functools.partial(_call_back, engine, foreign_id, int(status), spec, data)
        # A callback that loses a race (to another callback, a step, a pause) is tried again on
        # the run as the winner left it: usually no longer at ``status``, so it changes nothing.
        if not _on_conflict_again(attempt, f"call back {foreign_id!r} at {describe!r}", foreign_id=foreign_id):
            return


def _call_back(
    engine: Engine[Any, Any], foreign_id: str, status: int, spec: CallbackSpec[Any, Any], data: bytes
) -> bool:
    """Apply one callback to the latest run of ``foreign_id``; False when it is not at ``status`` or stopped.

    Raises `StepError` when the function fails (counted toward the pause),
    `CorruptRecord` when the unfinished run's stored status is not the workflow's (the
    run reported and paused first), and `VersionConflict` when another write moved the
    run after it was read.
    """
    record = engine.record_store.latest(engine.name, foreign_id)
    describe = engine.transitions.describe(status)
    process = f"{describe.lower().replace(' ', '_')}-callback"
    if record.status != status and not record.run_state.finished:
        _refuse_corrupt(engine, process, record)  # a status outside the enum: reported, paused, raised
    if record.status != status or record.run_state.stopped:
        return False
    fn = spec.fn
    result = engine.apply(record, lambda run: fn(run, data), spec.destinations, kind="callback")
    if isinstance(result, Failed):
        engine.fail_now(process, record, result.error, engine.config.defaults.pause_after_err_count)
        if isinstance(result.error, StepError):
            raise result.error
        msg = f"callback for {describe!r} failed: {result.error}"
        raise StepError(msg, run_id=record.run_id) from result.error
    if result is not None:
        engine.writer.store(result)
    return True


def change_run_state(
    engine: Engine[Any, Any], run_id: str, new_state: RunState, reason: str | None, *, check: bool = True
) -> Record:
    """The controller: move a run to ``new_state`` through the run-state transition table.

    Reads the record, checks the table, writes version + 1; on a concurrent write it
    reads again and re-checks, so the action applies to the run as it is.
    """
    return control_run_state(
        engine.record_store.lookup,
        lambda record: engine.transitions.next(record, run_state=new_state, reason=reason),
        engine.writer.store,
        run_id,
        new_state,
        check=check,
    )


def control_run_state(
    lookup: Callable[[str], Record],
    next_write: Callable[[Record], Write],
    store: Callable[[Write], None],
    run_id: str,
    new_state: RunState,
    *,
    check: bool = True,
) -> Record:
    """The controller's rule, for any reader and writer of records (an engine, or a tool without code).

    ``lookup`` reads the run, ``next_write`` makes its next version (in ``new_state``),
    ``store`` stores it; the transition table is checked first (unless ``check`` is
    false), and a lost race reads and checks again.
    """

    def attempt() -> Record:
        record = lookup(run_id)
        if check:
            check_run_state_transition(record.run_state, new_state, run_id=run_id)
        write = next_write(record)
        store(write)
        return write.record

    return _on_conflict_again(attempt, f"change run {run_id}'s run state to {new_state}", run_id=run_id)


def _on_conflict_again(attempt: Callable[[], R], what: str, **context: Any) -> R:
    """``attempt()``, done again (it reads the record afresh) each time a concurrent write wins.

    Gives up with `ActorflowError` after `_RETRIES_ON_CONFLICT` lost races; ``what`` (the
    action) and ``context`` (the run) go into that error.
    """
    for _ in range(_RETRIES_ON_CONFLICT):
        try:
            return attempt()
        except VersionConflict:
            continue
    msg = f"the run kept changing; could not {what} ({_RETRIES_ON_CONFLICT} attempts)"
    raise ActorflowError(msg, **context)
