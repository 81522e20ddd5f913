"""`Workflow`: trigger runs, await them, call back into them, and run its processes.

The public facade of a built workflow. Every method delegates to the workflow's
`actorflow.engine.Engine` (``wf.engine``), which the processes share.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from actorflow.engine import Engine, WorkflowConfig, actions
from actorflow.errors import ActorflowError, BuildError, NotRunning
from actorflow.record import Record, Run
from actorflow.runstate import RunState
from actorflow.specs import ScheduleSpec

if TYPE_CHECKING:
    from actorflow.codec import Codec
    from actorflow.graph import Graph
    from actorflow.metrics import Metrics
    from actorflow.protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
    from actorflow.runtime.state import ProcessState
    from actorflow.runtime.supervisor import Supervisor

__all__ = ["Workflow", "WorkflowConfig"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class Workflow(Generic[T, S]):
    """A built workflow. Made by `Builder.build`; starts nothing until `run`."""

    def __init__(
        self,
        config: WorkflowConfig[T, S],
        event_streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
    ) -> None:
        self.engine: Engine[T, S] = Engine(
            config, event_streamer, record_store, role_scheduler, timeout_store, api=self
        )
        self.config = config
        self.name = config.name
        self.codec: Codec[T] = config.codec
        self.graph: Graph = config.graph
        self.clock = config.clock
        self._private: Supervisor | None = None

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}>"

    @property
    def event_streamer(self) -> EventStreamer:
        """The event streamer the workflow was built on."""
        return self.engine.event_streamer

    @property
    def record_store(self) -> RecordStore:
        """The record store the workflow was built on."""
        return self.engine.record_store

    @property
    def role_scheduler(self) -> RoleScheduler:
        """The role scheduler the workflow's roles are claimed through."""
        return self.engine.role_scheduler

    @property
    def timeout_store(self) -> TimeoutStore | None:
        """The timeout store the workflow was built on, if any."""
        return self.engine.timeout_store

    @property
    def schedules(self) -> list[ScheduleSpec[T]]:
        """The cron schedules registered with `schedule`."""
        return self.engine.schedules

    @property
    def publishes_directly(self) -> bool:
        """True when the record store writes events in the record's transaction (no outbox relay)."""
        return self.engine.capabilities.publishes_directly

    @property
    def metrics(self) -> Metrics:
        """The metrics this workflow records to (its supervisor's registry, else the default)."""
        return self.engine.metrics

    # -- runs ----------------------------------------------------------------------------

    def trigger(
        self,
        foreign_id: str,
        initial_value: T | None = None,
        start_at: S | None = None,
    ) -> str:
        """Start a run for ``foreign_id``; returns its run id.

        Works without `run` (another node may run the steps). Raises `WorkflowInProgress`
        when the foreign id has an unfinished run, `UnknownStatus` for a status outside the
        graph, `InvalidTransition` for a terminal ``start_at``, `CodecError` for an object
        that does not encode (`ObjectTypeError`, also a `TypeError`, when it is not of the
        workflow's object type), `ObjectTooLarge` for one over ``max_object_bytes``,
        `StatusTypeError` (a `TypeError`) for a ``start_at`` of another enum (a plain int
        value is accepted); nothing is stored then.
        """
        return actions.trigger(self.engine, foreign_id, initial_value, start_at)

    def trigger_many(self, items: Iterable[str | tuple[str, T | None]], start_at: S | None = None) -> list[str]:
        """Start a run for each item (a foreign id, or ``(foreign_id, initial_value)``), in one commit.

        Returns the run ids in the items' order. For bulk work: one transaction (one
        multi-row write) instead of one per run. Every item is checked first, and an
        unknown status, a terminal ``start_at`` or an object that does not encode raises
        before anything is stored. A foreign id with an unfinished run is refused alone:
        the others are stored, and `WorkflowInProgress` is raised with ``foreign_ids``
        (the refused) and ``run_ids`` (the runs started).
        """
        return actions.trigger_many(self.engine, items, start_at)

    def await_status(self, foreign_id: str, run_id: str, status: S, timeout: float = 60.0) -> Run[T, S]:
        """Wait until the run is, or has been since it was triggered, at ``status``.

        Returns the run as it was at that status. A pause, cancel or other run-state
        change never satisfies the wait. Raises `AwaitTimeout` (a `TimeoutError`) after
        ``timeout`` seconds. "Has been" needs a store with `Snapshots` (every shipped
        store); over a store without them only the versions seen while waiting count.
        A ``status`` of another enum raises `StatusTypeError` (a `TypeError`). A run
        whose stored status is not in the workflow's enum can never get there: it raises
        `CorruptRecord` at once (the run reported and, unless stopped, paused).
        """
        return actions.await_status(self.engine, foreign_id, run_id, status, timeout)

    def callback(self, foreign_id: str, status: S, payload: bytes | None = None) -> None:
        """Hand ``payload`` to the callbacks of ``status`` for the latest run of ``foreign_id``.

        Changes nothing and returns ``None`` when that run is not at ``status`` or is
        stopped. That holds when the write is made, not only when the run is read: a
        callback that loses a race to another write of the run (two callbacks at once, a
        step, a pause) is tried again on the run as that write left it, so of two callbacks
        at once for one status exactly one moves the run and the other returns ``None``
        (its function may then have been called for nothing: the result of a lost race
        is dropped, not stored). A callback function that called ``run.pause()`` or
        ``run.cancel()`` pauses or cancels the run whatever it returns (see `Run`).

        Raises `StatusTypeError` for a ``status`` of another enum,
        `UnknownStatus`, `RecordNotFound`, or `StepError` when the callback function
        fails or returns a status it may not (the error is counted toward
        ``pause_after_err_count`` and nothing is stored); `CorruptRecord` when the
        unfinished run's stored status is not in the workflow's enum (the run reported
        and, unless stopped, paused); `ActorflowError` when the run kept changing
        through five attempts.
        """
        actions.callback(self.engine, foreign_id, status, payload)

    # -- asyncio twins: the same calls, for async code (none blocks the event loop) --------

    async def trigger_async(self, foreign_id: str, initial_value: T | None = None, start_at: S | None = None) -> str:
        """`trigger` from async code: the commit runs in a worker thread (concurrent ones share a commit)."""
        return await asyncio.to_thread(self.trigger, foreign_id, initial_value, start_at)

    async def trigger_many_async(
        self, items: Iterable[str | tuple[str, T | None]], start_at: S | None = None
    ) -> list[str]:
        """`trigger_many` from async code."""
        return await asyncio.to_thread(self.trigger_many, list(items), start_at)

    async def await_status_async(
        self,
        foreign_id: str,
        run_id: str,
        status: S,
        timeout: float = 60.0,  # noqa: ASYNC109 - the same signature as await_status
    ) -> Run[T, S]:
        """`await_status` from async code: woken by this engine's own writes on the caller's loop (no thread waits).

        Writes made by other processes are found by reading the store every ``polling_frequency``.
        """
        return await actions.await_status_async(self.engine, foreign_id, run_id, status, timeout)

    async def callback_async(self, foreign_id: str, status: S, payload: bytes | None = None) -> None:
        """`callback` from async code (an ``async def`` callback function runs on the engine's loop)."""
        await asyncio.to_thread(self.callback, foreign_id, status, payload)

    async def pause_async(self, run_id: str, reason: str = "") -> Record:
        """`pause` from async code."""
        return await asyncio.to_thread(self.pause, run_id, reason)

    async def resume_async(self, run_id: str) -> Record:
        """`resume` from async code."""
        return await asyncio.to_thread(self.resume, run_id)

    async def cancel_async(self, run_id: str, reason: str = "") -> Record:
        """`cancel` from async code."""
        return await asyncio.to_thread(self.cancel, run_id, reason)

    async def delete_data_async(self, run_id: str, reason: str = "") -> Record:
        """`delete_data` from async code."""
        return await asyncio.to_thread(self.delete_data, run_id, reason)

    def schedule(
        self,
        foreign_id: str,
        spec: str,
        initial_value: T | None = None,
        filter: Callable[[datetime], bool] | None = None,  # noqa: A002 - the fixed API's name
    ) -> None:
        """Trigger ``foreign_id`` on the cron ``spec`` while the workflow runs; returns at once.

        ``spec`` is five cron fields, a descriptor (``@daily``...) or ``@every 1h30m``.
        ``filter(now)`` returning False skips a slot. Slots missed while no node ran the
        workflow are fired once. Registering the same (foreign id, spec) twice raises
        `BuildError`. The foreign id and ``initial_value`` are checked here as `trigger`
        checks them (`InvalidForeignId`; `ObjectTypeError`, a `TypeError`, or
        `CodecError`, `ObjectTooLarge`): a schedule whose every slot would fail is refused.
        """
        from actorflow.cron import parse  # noqa: PLC0415 - cron is only needed here

        parse(spec)
        actions.check_schedule(self.engine, foreign_id, initial_value)
        if any(s.foreign_id == foreign_id and s.spec == spec for s in self.engine.schedules):
            msg = f"schedule {spec!r} for {foreign_id!r} is already registered on {self!r}"
            raise BuildError(msg)
        self.engine.add_schedule(
            ScheduleSpec(
                foreign_id=foreign_id,
                spec=spec,
                initial_value=initial_value,
                filter=filter,
                registered_at=self.clock.now(),
            )
        )

    # -- record-level actions ------------------------------------------------------------

    def pause(self, run_id: str, reason: str = "") -> Record:
        """Pause the run: its steps stop until `resume`. Returns the stored record."""
        return actions.change_run_state(self.engine, run_id, RunState.PAUSED, reason)

    def resume(self, run_id: str) -> Record:
        """Resume a paused run: its current step runs again."""
        return actions.change_run_state(self.engine, run_id, RunState.RUNNING, "")

    def cancel(self, run_id: str, reason: str = "") -> Record:
        """Cancel the run: it is finished and never runs a step again."""
        return actions.change_run_state(self.engine, run_id, RunState.CANCELLED, reason)

    def delete_data(self, run_id: str, reason: str = "") -> Record:
        """Request deletion of a finished run's data; the delete process replaces its object."""
        return actions.change_run_state(self.engine, run_id, RunState.REQUESTED_DATA_DELETED, reason)

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> None:
        """Start the workflow's processes on a private supervisor; idempotent.

        Returns once every process has subscribed for its role.
        """
        if self._private is not None:
            return
        if self.engine.host is not None:
            msg = f"{self!r} is hosted by a Supervisor; start or stop that supervisor instead"
            raise ActorflowError(msg)
        # The one deferred import of the package: the runtime hosts workflows, so it sits
        # above this facade; this convenience reaches up to it only when called.
        from actorflow.runtime.supervisor import Supervisor  # noqa: PLC0415

        supervisor = Supervisor([self])
        self._private = supervisor
        try:
            supervisor.start()
        except BaseException:
            self._private = None
            raise

    def stop(self) -> None:
        """Stop the processes started by `run`; safe when not running."""
        supervisor = self._private
        if supervisor is None:
            if self.engine.host is not None:
                msg = f"{self!r} is hosted by a Supervisor; stop the supervisor"
                raise ActorflowError(msg)
            return
        supervisor.stop()
        self._private = None

    def states(self) -> dict[str, ProcessState]:
        """Each process's state, by the original's process names (empty when not running)."""
        host = self.engine.host
        if host is None:
            return {}
        prefix = f"{self.name}/"
        return {k[len(prefix) :]: v for k, v in host.states().items() if k.startswith(prefix)}

    def require_running(self) -> None:
        """Raise `NotRunning` unless a supervisor runs this workflow."""
        if self.engine.host is None:
            raise NotRunning
