"""Helpers for testing workflows: wait for a status, drive callbacks and timeouts, unit-test a step.

They port the original's ``testing.go``. Waits are bounded by ``timeout`` and wake on the
engine's own notifications; without them (a store in another process) they poll the
store every ``poll`` seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from actorflow.errors import RecordNotFound
from actorflow.protocols import TimeoutRecord
from actorflow.record import Record, RecordMeta, Run
from actorflow.runstate import RunState
from actorflow.workflow import Workflow

__all__ = [
    "await_timeout_insert",
    "new_testing_run",
    "require",
    "trigger_callback_on",
    "wait_for",
]

T = TypeVar("T")
S = TypeVar("S")

_POLL = 0.01


def _latest_run_id(wf: Workflow[Any, Any], foreign_id: str, deadline: float, poll: float) -> str:
    while True:
        try:
            return wf.record_store.latest(wf.name, foreign_id).run_id
        except RecordNotFound:
            if time.monotonic() >= deadline:
                msg = f"no run of {wf.name!r} for foreign id {foreign_id!r} appeared"
                raise AssertionError(msg) from None
            time.sleep(poll)


def wait_for(
    wf: Workflow[T, Any],
    foreign_id: str,
    fn: Callable[[Run[T, Any]], bool],
    *,
    timeout: float = 10.0,
    poll: float = _POLL,
) -> Run[T, Any]:
    """Wait until ``fn(run)`` is true for some stored version of the foreign id's latest run.

    Every version counts, including those the run has already moved past. Raises
    `AssertionError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    run_id = _latest_run_id(wf, foreign_id, deadline, poll)
    seen = 0
    engine = wf.engine
    with engine.watch.watch(run_id) as waiter:
        while True:
            history = engine.history(run_id)
            # With snapshots only new versions need a look; without, the one current record.
            fresh = history[seen:] if engine.capabilities.snapshots is not None else history
            for record in fresh:
                run = engine.transitions.run(record, as_stored=True)
                if fn(run):
                    return run
            seen = len(history)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"run {run_id} of {foreign_id!r} never met the condition within {timeout}s"
                raise AssertionError(msg)
            waiter.take(min(remaining, max(poll, 0.05)))


def require(
    wf: Workflow[T, Any],
    foreign_id: str,
    status: Any,
    expected: T,
    *,
    timeout: float = 10.0,
) -> Run[T, Any]:
    """Wait for the foreign id's latest run to reach ``status``; assert its object there.

    The expected object goes through the workflow's codec first, so it is compared as it
    would be stored.
    """
    wf.graph.require(int(status))
    run = wait_for(wf, foreign_id, lambda r: int(r.status) == int(status), timeout=timeout)
    want = wf.codec.decode(wf.codec.encode(expected))
    if run.object != want:
        msg = f"at {status!r} the object is {run.object!r}, expected {want!r}"
        raise AssertionError(msg)
    return run


def trigger_callback_on(
    wf: Workflow[Any, Any],
    foreign_id: str,
    run_id: str,
    status: Any,
    payload: Any,
    *,
    timeout: float = 10.0,
) -> None:
    """Once the run reaches ``status``, call back with ``payload`` (JSON-encoded unless bytes)."""
    wf.await_status(foreign_id, run_id, status, timeout=timeout)
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    wf.callback(foreign_id, status, data)


def await_timeout_insert(
    wf: Workflow[Any, Any],
    foreign_id: str,
    run_id: str,
    status: Any,
    *,
    timeout: float = 10.0,
    poll: float = _POLL,
) -> TimeoutRecord:
    """Wait until a timeout for (status, foreign id, run id) is stored; returns it."""
    store = wf.timeout_store
    if store is None:
        msg = f"{wf!r} has no timeout store"
        raise AssertionError(msg)
    deadline = time.monotonic() + timeout
    while True:
        for found in store.list(wf.name):
            if found.status == int(status) and found.foreign_id == foreign_id and found.run_id == run_id:
                return found
        if time.monotonic() >= deadline:
            msg = f"no timeout for run {run_id} at {status!r} was inserted within {timeout}s"
            raise AssertionError(msg)
        time.sleep(poll)


def new_testing_run(
    wf: Workflow[T, Any],
    obj: T,
    status: Any,
    *,
    foreign_id: str = "test-foreign-id",
    run_id: str | None = None,
    run_state: RunState = RunState.RUNNING,
    pause_fn: Callable[[str], None] | None = None,
    cancel_fn: Callable[[str], None] | None = None,
    save_and_repeat_fn: Callable[[str], None] | None = None,
) -> Run[T, Any]:
    """A `Run` to unit-test one step function without running the workflow.

    ``pause_fn``/``cancel_fn``/``save_and_repeat_fn`` are called with the reason when the
    step calls ``run.pause(...)`` etc.; the step's return value tells the rest.
    """
    now = datetime.now(UTC)
    record = Record(
        workflow_name=wf.name,
        foreign_id=foreign_id,
        run_id=run_id or str(uuid.uuid4()),
        run_state=run_state,
        status=int(status),
        object=wf.codec.encode(obj),
        created_at=now,
        updated_at=now,
        meta=RecordMeta(version=1, status_description=wf.engine.transitions.describe(int(status))),
    )
    hooks = {
        name: fn
        for name, fn in (("pause", pause_fn), ("cancel", cancel_fn), ("save_and_repeat", save_and_repeat_fn))
        if fn is not None
    }
    run = wf.engine.transitions.run(record, hooks=hooks)
    run.object = obj  # the very object given, not a decoded copy
    return run
