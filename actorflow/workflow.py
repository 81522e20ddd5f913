"""`Workflow`: trigger runs, await them, call back into them, and run its processes."""

from __future__ import annotations

import dataclasses
import enum
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from actorflow import transitions, watch
from actorflow._trace import trace_origin
from actorflow.clock import Clock
from actorflow.codec import Codec
from actorflow.errors import (
    ActorflowError,
    AwaitTimeout,
    BuildError,
    InvalidTransition,
    NotRunning,
    RecordNotFound,
    StepError,
)
from actorflow.graph import Graph
from actorflow.metrics import Metrics, metrics_for
from actorflow.options import Options, OutboxOptions
from actorflow.protocols import (
    BatchLookup,
    BatchStore,
    ClockBorrower,
    DirectPublisher,
    ErrorCounter,
    InFlightLog,
    OutboxWaiter,
    Snapshots,
)
from actorflow.record import Record, RecordMeta, Run
from actorflow.runstate import RunState
from actorflow.specs import CallbackSpec, ConnectorSpec, HookFunc, ScheduleSpec, StepSpec, TimeoutSpec
from actorflow.status import status_name

if TYPE_CHECKING:
    from actorflow.protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
    from actorflow.runtime.state import ProcessState
    from actorflow.runtime.supervisor import Supervisor

__all__ = ["Workflow", "WorkflowConfig"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_REACHED = frozenset({RunState.INITIATED, RunState.RUNNING, RunState.COMPLETED})


@dataclasses.dataclass(frozen=True)
class WorkflowConfig(Generic[T, S]):
    """Everything a builder decided (internal)."""

    name: str
    object_type: type[T]
    status_type: type[S]
    codec: Codec[T]
    graph: Graph
    steps: dict[int, StepSpec[T, S]]
    callbacks: dict[int, list[CallbackSpec[T, S]]]
    timeouts: dict[int, TimeoutSpec[T, S]]
    connectors: list[ConnectorSpec[T, S]]
    hooks: dict[RunState, HookFunc]
    defaults: Options
    outbox: OutboxOptions | None
    pause_retry: float | None
    custom_delete: Callable[[T], T] | None
    clock: Clock
    debug: bool
    default_start: int
    error_counter: ErrorCounter | None


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
        self.config = config
        self.name = config.name
        self.codec = config.codec
        self.graph = config.graph
        self.clock = config.clock
        self.event_streamer = event_streamer
        self.record_store = record_store
        self.role_scheduler = role_scheduler
        self.timeout_store = timeout_store
        if isinstance(event_streamer, ClockBorrower):
            event_streamer.use_clock(config.clock)  # event times by the workflow's clock
        self.schedules: list[ScheduleSpec[T]] = []
        self._batch_store: BatchStore | None = record_store if isinstance(record_store, BatchStore) else None
        self._batch_lookup: BatchLookup | None = record_store if isinstance(record_store, BatchLookup) else None
        self._in_flight: InFlightLog | None = record_store if isinstance(record_store, InFlightLog) else None
        self._snapshots: Snapshots | None = record_store if isinstance(record_store, Snapshots) else None
        self._outbox_waiter: OutboxWaiter | None = record_store if isinstance(record_store, OutboxWaiter) else None
        # Events written in the record's own transaction: no outbox relay is needed.
        self.publishes_directly = isinstance(record_store, DirectPublisher) and record_store.publish_directly(
            config.name, event_streamer
        )
        counter = config.error_counter
        if counter is None and isinstance(record_store, ErrorCounter):
            counter = record_store
        self.error_counter: ErrorCounter = counter or transitions.ErrorCounts()
        self._statuses = {int(m): m for m in config.status_type}
        self._descriptions = {int(m): status_name(m) for m in config.status_type}
        self._metrics: Metrics | None = None
        self._host: Supervisor | None = None
        self._private: Supervisor | None = None

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}>"

    # -- status helpers ---------------------------------------------------------------

    def _status_of(self, value: int) -> S:
        found = self._statuses.get(value)
        if found is None:
            msg = f"status {value} is not a {self.config.status_type.__name__}"
            raise ActorflowError(msg, status=value)
        return found

    def _status_description(self, value: int) -> str:
        return self._descriptions.get(value) or str(value)

    @property
    def metrics(self) -> Metrics:
        """The metrics this workflow records to (its supervisor's registry, else the default)."""
        if self._metrics is None:
            self._metrics = metrics_for(None)
        return self._metrics

    def _count_run_state_change(self, previous: RunState, current: RunState) -> None:
        self.metrics.run_state_changes.inc(self.name, str(previous), str(current))

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
        that does not encode; nothing is stored then.
        """
        start = self.config.default_start if start_at is None else int(start_at)
        self.graph.require(start)
        if self.graph.is_terminal(start):
            msg = f"cannot start a run at terminal status {self._status_description(start)!r}"
            raise InvalidTransition(msg, status=start)
        obj = self.config.object_type() if initial_value is None else initial_value
        data = self.codec.encode(obj)
        now = self.clock.now()
        meta = RecordMeta(
            version=1,
            status_description=self._status_description(start),
            trace_origin=trace_origin(),
        )
        record = Record(
            workflow_name=self.name,
            foreign_id=foreign_id,
            run_id=str(uuid.uuid4()),
            run_state=RunState.INITIATED,
            status=start,
            object=data,
            created_at=now,
            updated_at=now,
            meta=meta,
        )
        transitions.store(self, transitions.Write(record, RunState.UNKNOWN))
        return record.run_id

    def await_status(self, foreign_id: str, run_id: str, status: S, timeout: float = 60.0) -> Run[T, S]:
        """Wait until the run is, or has been since it was triggered, at ``status``.

        Returns the run as it was at that status. A pause, cancel or other run-state
        change never satisfies the wait. Raises `AwaitTimeout` (a `TimeoutError`) after
        ``timeout`` seconds. "Has been" needs a store with `Snapshots` (every shipped
        store); over a store without them only the versions seen while waiting count.
        """
        self.graph.require(int(status))
        target = int(status)
        deadline = time.monotonic() + timeout
        poll = self.config.defaults.polling_frequency

        def reached(records: list[Record]) -> Record | None:
            for record in records:
                if record.status == target and record.foreign_id == foreign_id and record.run_state in _REACHED:
                    return record
            return None

        with watch.watch(run_id) as waiter:
            found = reached(self._history(run_id))
            while found is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = f"run {run_id} did not reach {self._status_description(target)!r} within {timeout}s"
                    raise AwaitTimeout(msg, run_id=run_id, status=status)
                records = waiter.take(min(remaining, poll))
                # Writes by other processes never reach the waiter: poll the store too.
                found = reached(records) if records else reached(self._history(run_id))
        run = transitions.build_run(self, found)
        run.run_state = found.run_state
        return run

    def _history(self, run_id: str) -> list[Record]:
        if self._snapshots is not None:
            return self._snapshots.snapshots(run_id)
        try:
            return [self.record_store.lookup(run_id)]
        except RecordNotFound:
            return []

    def callback(self, foreign_id: str, status: S, payload: bytes | None = None) -> None:
        """Hand ``payload`` to the callbacks of ``status`` for the latest run of ``foreign_id``.

        Changes nothing when that run is not at ``status`` or is stopped. Raises
        `UnknownStatus`, `RecordNotFound`, or `StepError` when the callback function
        fails or returns a status it may not (the error is counted toward
        ``pause_after_err_count`` and nothing is stored).
        """
        self.graph.require(int(status))
        data = b"" if payload is None else payload
        specs = self.config.callbacks.get(int(status), ())
        if not specs:
            self.record_store.latest(self.name, foreign_id)  # an unknown foreign id still raises
            return
        for spec in specs:
            record = self.record_store.latest(self.name, foreign_id)
            if record.status != int(status) or record.run_state.stopped:
                return
            process = f"{self._status_description(int(status)).lower().replace(' ', '_')}-callback"
            run = transitions.build_run(self, record)
            try:
                write = transitions.result_record(self, record, run, spec.fn(run, data), spec.destinations)
            except Exception as exc:
                self._step_failed(process, record, self.config.defaults.pause_after_err_count)
                if isinstance(exc, StepError):
                    raise
                msg = f"callback for {self._status_description(int(status))!r} failed: {exc}"
                raise StepError(msg, run_id=record.run_id) from exc
            if write is not None:
                transitions.store(self, write)
                self.error_counter.clear_errors(transitions.error_key(process, record), record.run_id)

    def _step_failed(self, process: str, record: Record, limit: int) -> bool:
        """Count a step error; at the limit, pause the run. True when it was paused."""
        if limit <= 0:
            return False
        key = transitions.error_key(process, record)
        if self.error_counter.add_error(key, record.run_id) < limit:
            return False
        write = transitions.next_record(self, record, run_state=RunState.PAUSED, reason=transitions.AUTO_PAUSE_REASON)
        transitions.store(self, write)
        self.error_counter.clear_errors(key, record.run_id)
        return True

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
        `BuildError`.
        """
        from actorflow.cron import parse  # noqa: PLC0415 - cron is only needed here

        parse(spec)
        if any(s.foreign_id == foreign_id and s.spec == spec for s in self.schedules):
            msg = f"schedule {spec!r} for {foreign_id!r} is already registered on {self!r}"
            raise BuildError(msg)
        schedule = ScheduleSpec(
            foreign_id=foreign_id,
            spec=spec,
            initial_value=initial_value,
            filter=filter,
            registered_at=self.clock.now(),
        )
        self.schedules.append(schedule)
        if self._host is not None:
            self._host._add_schedule(self, schedule)  # noqa: SLF001

    # -- record-level actions ------------------------------------------------------------

    def pause(self, run_id: str, reason: str = "") -> Record:
        """Pause the run: its steps stop until `resume`. Returns the stored record."""
        return transitions.change_run_state(self, run_id, RunState.PAUSED, reason)

    def resume(self, run_id: str) -> Record:
        """Resume a paused run: its current step runs again."""
        return transitions.change_run_state(self, run_id, RunState.RUNNING, "")

    def cancel(self, run_id: str, reason: str = "") -> Record:
        """Cancel the run: it is finished and never runs a step again."""
        return transitions.change_run_state(self, run_id, RunState.CANCELLED, reason)

    def delete_data(self, run_id: str, reason: str = "") -> Record:
        """Request deletion of a finished run's data; the delete process replaces its object."""
        return transitions.change_run_state(self, run_id, RunState.REQUESTED_DATA_DELETED, reason)

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> None:
        """Start the workflow's processes on a private supervisor; idempotent.

        Returns once every process has subscribed for its role.
        """
        if self._private is not None:
            return
        if self._host is not None:
            msg = f"{self!r} is hosted by a Supervisor; start or stop that supervisor instead"
            raise ActorflowError(msg)
        from actorflow.runtime.supervisor import Supervisor  # noqa: PLC0415 - cycle

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
            if self._host is not None:
                msg = f"{self!r} is hosted by a Supervisor; stop the supervisor"
                raise ActorflowError(msg)
            return
        supervisor.stop()
        self._private = None

    def states(self) -> dict[str, ProcessState]:
        """Each process's state, by the original's process names (empty when not running)."""
        if self._host is None:
            return {}
        prefix = f"{self.name}/"
        return {k[len(prefix) :]: v for k, v in self._host.states().items() if k.startswith(prefix)}

    def require_running(self) -> None:
        """Raise `NotRunning` unless a supervisor runs this workflow."""
        if self._host is None:
            raise NotRunning
