"""How a run moves, without I/O: typed views of a record, and the record a result asks for.

`Transitions` knows the workflow's statuses, codec, graph and clock. It builds the `Run`
a user function receives, turns the function's result into the next record (version +
1, ``updated_at`` now), and checks that result against the graph. Storing is the
`Writer`'s job; deciding retry or pause is the failure rule's.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from actorflow.errors import ActorflowError, CodecError, InvalidTransition, StepError
from actorflow.log import logger
from actorflow.record import Record, RecordMeta, Run, TypedRecord
from actorflow.runstate import RunState
from actorflow.status import RUN_STATE_UPDATED, SAVE_AND_REPEAT, SKIP, Sentinel, status_name

from .config import WorkflowConfig

__all__ = ["Transitions", "Write", "next_version"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class Write(NamedTuple):
    """A record to store, with the run state it moves from (for the run-state metric)."""

    record: Record
    previous: RunState


def next_version(
    record: Record,
    *,
    run_state: RunState,
    now: datetime,
    status: int | None = None,
    data: bytes | None = None,
    reason: str | None = None,
    description: str | None = None,
) -> Write:
    """The version after ``record``: version + 1, ``updated_at`` = ``now``, the rest as given or kept.

    ``description`` is the status's name (kept from ``record`` when not given: a tool
    without the workflow's code keeps the name the engine stored).
    """
    m = record.meta
    version = m.version + 1
    run_state_reason = m.run_state_reason if reason is None else reason
    status_description = m.status_description if description is None else description
    status = record.status if status is None else status
    data = record.object if data is None else data
    if type(record) is Record and type(m) is RecordMeta:
        # The exact classes (the common case): built directly, as dataclasses.replace costs
        # a field introspection per call on the hot path.
        meta = RecordMeta(
            version=version,
            run_state_reason=run_state_reason,
            status_description=status_description,
            trace_origin=m.trace_origin,
        )
        new = Record(
            workflow_name=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            run_state=run_state,
            status=status,
            object=data,
            created_at=record.created_at,
            updated_at=now,
            meta=meta,
        )
    else:  # a subclass: replace keeps its type and its own fields
        meta = dataclasses.replace(
            m, version=version, run_state_reason=run_state_reason, status_description=status_description
        )
        new = dataclasses.replace(record, run_state=run_state, status=status, object=data, updated_at=now, meta=meta)
    return Write(new, record.run_state)


class Transitions(Generic[T, S]):
    """The pure rules of moving a run of one workflow (see the module docstring)."""

    def __init__(self, config: WorkflowConfig[T, S]) -> None:
        self._config = config
        self._codec = config.codec
        self._graph = config.graph
        self._clock = config.clock
        self._statuses = {int(m): m for m in config.status_type}
        self._descriptions = {int(m): status_name(m) for m in config.status_type}

    # -- statuses ---------------------------------------------------------------------------

    def status_of(self, value: int) -> S:
        """The workflow's enum member for a stored status; `ActorflowError` for another value."""
        found = self._statuses.get(value)
        if found is None:
            msg = f"status {value} is not a {self._config.status_type.__name__}"
            raise ActorflowError(msg, status=value)
        return found

    def knows(self, value: int) -> bool:
        """True when ``value`` is a member of the workflow's status enum (a stored row may hold another)."""
        return value in self._statuses

    def describe(self, value: int) -> str:
        """The human name of a status (``Order Placed``), or its number when unknown."""
        return self._descriptions.get(value) or str(value)

    # -- typed views ----------------------------------------------------------------------

    def typed(self, record: Record) -> TypedRecord[T, S]:
        """The record with its object decoded and its status as the workflow's enum."""
        return TypedRecord(
            workflow_name=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            run_state=record.run_state,
            status=self.status_of(record.status),
            object=self._codec.decode(record.object),
            created_at=record.created_at,
            updated_at=record.updated_at,
            meta=record.meta,
        )

    def typed_or_none(self, record: Record) -> TypedRecord[T, S] | None:
        """The typed record, or ``None`` when its object does not decode (e.g. data deleted)."""
        try:
            return self.typed(record)
        except CodecError:
            return None

    def run(
        self, record: Record, *, as_stored: bool = False, hooks: dict[str, Callable[[str], None]] | None = None
    ) -> Run[T, S]:
        """The `Run` a user function receives; an Initiated run is seen as Running.

        ``as_stored`` keeps the stored run state (what a waiter is handed); ``hooks`` are
        the test hooks of `actorflow.testing.new_testing_run`.
        """
        state = record.run_state
        if state is RunState.INITIATED and not as_stored:
            state = RunState.RUNNING
        return Run(
            workflow_name=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            run_state=state,
            status=self.status_of(record.status),
            object=self._codec.decode(record.object),
            created_at=record.created_at,
            updated_at=record.updated_at,
            meta=record.meta,
            hooks=hooks,
        )

    # -- the next record ------------------------------------------------------------------

    def next(
        self,
        record: Record,
        *,
        run_state: RunState,
        status: int | None = None,
        data: bytes | None = None,
        reason: str | None = None,
    ) -> Write:
        """The next version of ``record``: version + 1, ``updated_at`` now, the rest as given."""
        new_status = record.status if status is None else int(status)
        return next_version(
            record,
            run_state=run_state,
            now=self._clock.now(),
            status=new_status,
            data=data,
            reason=reason,
            description=self.describe(new_status),
        )

    def result(self, record: Record, run: Run[T, S], result: Any, allowed: Sequence[int]) -> Write | None:
        """The record a user function's result asks for; ``None`` to skip.

        A returned ``0`` (the original's zero status, which no workflow status may be) is
        a skip, as ``run.skip()``.
        A function that called ``run.pause()``/``run.cancel()`` gets that run state
        whatever it returns (the run-state change wins, as in the original, where the pause
        is stored at once and the step's later write finds the run moved): the run is
        stored as loaded with the requested state and reason, and any other result is
        dropped with a warning.
        Raises `StepError` when the result is not one of ``allowed`` (or a sentinel), or the
        object no longer encodes: nothing is stored in that case.
        """
        requested = run.requested_run_state()
        if requested is not None:
            state, reason = requested
            if not (isinstance(result, int) and result == RUN_STATE_UPDATED):
                logger.warning(
                    "%s: run %s called run.pause()/cancel() and then returned %s: stored as %s, the result dropped",
                    record.workflow_name,
                    record.run_id,
                    self._shown(result),
                    state,
                )
            return self.next(record, run_state=state, reason=reason)
        if isinstance(result, Sentinel):
            if result is SKIP or result == SKIP:
                return None
            if result == RUN_STATE_UPDATED:
                msg = "the step returned the run-state sentinel without calling run.pause() or run.cancel()"
                raise StepError(msg, run_id=record.run_id)
            if result == SAVE_AND_REPEAT:
                return self.next(record, run_state=RunState.RUNNING, data=self._encode(run))
        if isinstance(result, int) and not isinstance(result, bool) and result == 0:
            return None  # the original's zero status: skip, as run.skip() (no status of a workflow is 0)
        if result is None or not isinstance(result, int):
            msg = f"the function returned {result!r}; return a status or a run.skip()/pause()/cancel() result"
            raise StepError(msg, run_id=record.run_id)
        status = int(result)
        if status not in allowed:
            names = ", ".join(self.describe(s) for s in allowed)
            msg = f"the function returned {self.describe(status)!r}, which is not one of its destinations ({names})"
            raise StepError(msg, run_id=record.run_id) from InvalidTransition(msg)
        state = RunState.COMPLETED if self._graph.is_terminal(status) else RunState.RUNNING
        return self.next(record, run_state=state, status=status, data=self._encode(run))

    def _shown(self, result: Any) -> str:
        """A function's result for a log line: a status by name, a sentinel by label, else its repr."""
        if isinstance(result, int) and not isinstance(result, (bool, Sentinel)):
            return repr(self.describe(int(result)))
        return repr(result)

    def _encode(self, run: Run[T, S]) -> bytes:
        try:
            return self._codec.encode(run.object)
        except Exception as exc:
            msg = f"the run's object does not encode: {exc}"
            raise StepError(msg, run_id=run.run_id) from exc
