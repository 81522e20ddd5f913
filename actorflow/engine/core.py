"""`Engine`: the middle every process and the `Workflow` facade share.

One engine per built workflow. It holds the workflow's config and adapters, the optional
capabilities of those adapters (detected once, here), the `Transitions` (statuses, codec,
the next record), the error counter and the failure rule, the one write path
(`Writer`), the waiters of ``await_status``, and the metrics of the supervisor that
hosts it. Processes receive the engine, never the facade; the facade delegates to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from actorflow.capabilities import (
    BatchLookup,
    BatchStore,
    ClockBorrower,
    CommitAcks,
    DirectPublisher,
    ErrorCounter,
    FencedAcks,
    FencedStore,
    InFlightLog,
    LocalWakeups,
    OutboxWaiter,
    Snapshots,
)
from actorflow.errors import ActorflowError, CorruptRecord, RecordNotFound, StepTimeout
from actorflow.log import logger, workflow_logger
from actorflow.metrics import Metrics, metrics_for
from actorflow.protocols import EventStreamer, Fence, RecordStore, RoleScheduler, TimeoutStore
from actorflow.record import Record, Run
from actorflow.runstate import RunState
from actorflow.runtime.state import ProcessState
from actorflow.specs import ScheduleSpec
from actorflow.topics import topic

from .aio import AsyncLoop, is_async
from .config import WorkflowConfig
from .failures import AUTO_PAUSE_REASON, CORRUPT_PAUSE_REASON, ErrorCounts, reached_limit
from .handoff import Handoff
from .transitions import Transitions, Write
from .watch import WatchRegistry
from .writer import Writer

__all__ = ["Capabilities", "Engine", "Failed", "Host"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class Host(Protocol):
    """What hosts an engine's processes: a `Supervisor` binds itself through this."""

    def add_schedule(self, engine: Engine[Any, Any], schedule: ScheduleSpec[Any]) -> None:
        """Start the process of a schedule registered while hosted."""
        ...

    def states(self) -> dict[str, ProcessState]:
        """Every hosted process's state, keyed ``<workflow>/<process name>``."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """The optional capabilities of a workflow's adapters (``None`` where absent)."""

    batch_store: BatchStore | None
    batch_lookup: BatchLookup | None
    in_flight: InFlightLog | None
    snapshots: Snapshots | None
    outbox_waiter: OutboxWaiter | None
    publishes_directly: bool  # events written in the record's transaction: no outbox relay
    fences: bool  # the store checks a role's lease in the transaction of the role's writes
    fenced_acks: bool  # the streamer's receivers check it in the transaction of an acknowledgement
    commit_acks: bool  # the store moves the streamer's cursors in the transaction of a batch
    # The writer hands its events to this engine's own consumers (engine/handoff.py): when
    # the store cannot publish them itself, or can leave them out of its wake-ups.
    hands_off: bool

    @classmethod
    def detect(
        cls,
        name: str,
        store: RecordStore,
        streamer: EventStreamer,
        scheduler: RoleScheduler,
        *,
        handed: Callable[[Record], bool],
    ) -> Capabilities:
        """Check ``store`` once for each capability (``publish_directly`` and ``wake_locally`` may register ``name``).

        ``handed``: whether this engine's consumers take a record's event from its writer now.
        """
        direct = isinstance(store, DirectPublisher) and store.publish_directly(name, streamer)
        return cls(
            batch_store=store if isinstance(store, BatchStore) else None,
            batch_lookup=store if isinstance(store, BatchLookup) else None,
            in_flight=store if isinstance(store, InFlightLog) else None,
            snapshots=store if isinstance(store, Snapshots) else None,
            outbox_waiter=store if isinstance(store, OutboxWaiter) else None,
            publishes_directly=direct,
            fences=isinstance(store, FencedStore) and store.fences_with(scheduler),
            fenced_acks=isinstance(streamer, FencedAcks) and streamer.fences_with(scheduler),
            commit_acks=isinstance(store, CommitAcks) and store.acks_for(streamer),
            hands_off=not direct or (isinstance(store, LocalWakeups) and store.wake_locally(name, handed)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """A user function raised, or returned what the engine cannot store."""

    error: BaseException


def _within(timeout: float, fn: Callable[[Run[T, S]], Any], run: Run[T, S]) -> Any:
    """``fn(run)`` on a thread of its own; `StepTimeout` when it has not returned after ``timeout`` seconds.

    Python cannot interrupt a thread: a step that overruns is abandoned, its thread (a
    daemon) runs on and whatever it returns is discarded. ``run`` is the step's own copy.
    """
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def call() -> None:
        try:
            outcome.append(fn(run))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=call, name=f"actorflow-step-{run.run_id[:8]}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        logger.error("step of run %s abandoned after its %.1fs step_timeout", run.run_id, timeout)
        msg = f"the step did not return within its step_timeout of {timeout}s"
        raise StepTimeout(msg, run_id=run.run_id)
    if failure:
        raise failure[0]
    return outcome[0]


def _as_is(outcome: Write | Failed | None) -> Write | Failed | None:
    return outcome


async def _bounded(awaitable: Awaitable[Any], limit: float, run_id: str) -> Any:
    """``awaitable``'s result; with a ``limit``, `StepTimeout` when it has not finished by then (it is cancelled)."""
    if limit <= 0:
        return await awaitable
    try:
        async with asyncio.timeout(limit):
            return await awaitable
    except TimeoutError:
        msg = f"the step did not return within its step_timeout of {limit}s"
        raise StepTimeout(msg, run_id=run_id) from None


class Engine(Generic[T, S]):
    """The engine of one workflow (internal; see the module docstring).

    Args:
        config: what the builder decided.
        event_streamer, record_store, role_scheduler, timeout_store: the adapters.
        api: what a connector function is handed as its workflow (the `Workflow` facade).
    """

    def __init__(
        self,
        config: WorkflowConfig[T, S],
        event_streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
        *,
        api: object = None,
    ) -> None:
        self.config = config
        self.log = workflow_logger(config.logger)
        """Where this workflow's processes log: the builder's ``logger``, else ``actorflow``."""
        # An actorflow.otel.Tracing when the workflow is traced (the otel extra), else None.
        self.tracing: Any = config.tracing
        self.aio = AsyncLoop(config.name)
        """The loop ``async def`` functions run on (see `actorflow.engine.aio`)."""
        self.name = config.name
        self.clock = config.clock
        self.event_streamer = event_streamer
        self.record_store = record_store
        self.role_scheduler = role_scheduler
        self.timeout_store = timeout_store
        self.api = api
        if isinstance(event_streamer, ClockBorrower):
            event_streamer.use_clock(config.clock)  # event times by the workflow's clock
        # Events of this engine's writes handed to its own consumers (engine/handoff.py).
        self.handoff = Handoff()
        self.capabilities = Capabilities.detect(
            config.name, record_store, event_streamer, role_scheduler, handed=self.handoff.promise
        )
        self.transitions: Transitions[T, S] = Transitions(config)
        counter = config.error_counter
        if counter is None and isinstance(record_store, ErrorCounter):
            counter = record_store
        self.error_counter: ErrorCounter = counter or ErrorCounts()
        self.watch = WatchRegistry()
        # Who forgets a run's counts once it moved on: the store in the same transaction
        # when it keeps them, else the engine (its in-memory counts) after the commit.
        in_store = self.error_counter is (record_store if isinstance(record_store, ErrorCounter) else None)
        self.writer = Writer(
            record_store,
            counts=self.error_counter if isinstance(self.error_counter, ErrorCounts) and not in_store else None,
            forget_in_store=in_store,
            watch=self.watch,
            metrics=lambda: self.metrics,
            fenced=self.capabilities.fences,
            handoff=self.handoff if self.capabilities.hands_off else None,
        )
        if self.capabilities.hands_off and self.capabilities.publishes_directly:
            # The store notifies what is not handed; a status's timeout inserter reads its topic too.
            self.handoff.keep_promises(read_elsewhere=[topic(config.name, status) for status in config.timeouts])
        self.schedules: list[ScheduleSpec[T]] = []
        self._metrics: Metrics | None = None
        self._host: Host | None = None

    def __repr__(self) -> str:
        return f"<Engine {self.name!r}>"

    # -- hosting --------------------------------------------------------------------------

    @property
    def host(self) -> Host | None:
        """The supervisor running this engine's processes, if any."""
        return self._host

    @property
    def metrics(self) -> Metrics:
        """The metrics this engine records to (its host's registry, else the default one)."""
        if self._metrics is None:
            self._metrics = metrics_for(None)
        return self._metrics

    def bind(self, host: Host, metrics: Metrics) -> None:
        """``host`` runs this engine's processes from now on, recording to ``metrics``."""
        if self._host is not None and self._host is not host:
            msg = f"workflow {self.name!r} is already hosted by another Supervisor (or running); stop it first"
            raise ActorflowError(msg)
        self._host = host
        self._metrics = metrics

    def unbind(self, host: Host) -> None:
        """``host`` stopped running this engine's processes (its loop for async functions stops too)."""
        if self._host is host:
            self._host = None
            self.aio.close()

    def use_role_scheduler(self, scheduler: RoleScheduler) -> None:
        """Claim the workflow's roles through ``scheduler`` from now on (before it is hosted)."""
        if self._host is not None:
            msg = f"workflow {self.name!r} is hosted: stop it before changing its role scheduler"
            raise ActorflowError(msg)
        self.role_scheduler = scheduler
        fences = isinstance(self.record_store, FencedStore) and self.record_store.fences_with(scheduler)
        streamer = self.event_streamer
        fenced_acks = isinstance(streamer, FencedAcks) and streamer.fences_with(scheduler)
        self.capabilities = dataclasses.replace(self.capabilities, fences=fences, fenced_acks=fenced_acks)
        self.writer.fence_through(enabled=fences)

    def add_schedule(self, schedule: ScheduleSpec[T]) -> None:
        """Keep ``schedule``; a host starts its process at once."""
        self.schedules.append(schedule)
        if self._host is not None:
            self._host.add_schedule(self, schedule)

    # -- running user functions -------------------------------------------------------------

    def apply(
        self,
        record: Record,
        fn: Callable[[Run[T, S]], Any],
        allowed: Sequence[int],
        *,
        timeout: float = 0.0,
        kind: str = "step",
    ) -> Write | Failed | None:
        """Run a user function on ``record`` and turn its result into the write it asks for.

        ``None`` when it asks to skip; `Failed` when it raised, returned a status outside
        ``allowed``, left an object that does not encode, or (with ``timeout``) did not
        return in time: nothing is stored then. Storing the write is the caller's: in its
        batch (group commit) or at once. An ``async def`` function is run on the engine's
        loop and waited for (`apply_async` lets a step overlap others instead). ``kind``
        (step, callback, timeout) names its span when the workflow is traced.
        """
        run = self.run_of(record)
        if isinstance(run, Failed):
            return run
        if self.tracing is None:  # the common case: no span, no context manager on the step's path
            return self._call(record, run, fn, allowed, timeout)
        with self._traced(kind, record) as finish:
            return finish(self._call(record, run, fn, allowed, timeout))

    def _call(
        self, record: Record, run: Run[T, S], fn: Callable[[Run[T, S]], Any], allowed: Sequence[int], timeout: float
    ) -> Write | Failed | None:
        try:
            # An async def returns its coroutine here, awaited (within the timeout) below.
            result = fn(run) if timeout <= 0 or is_async(fn) else _within(timeout, fn, run)
            if inspect.isawaitable(result):  # an async def, or a wrapper of one (a callback's, a timeout's)
                result = self.aio.run(_bounded(result, timeout, run.run_id), hosted=self._host is not None)
            return self.transitions.result(record, run, result, allowed)
        except Exception as exc:  # noqa: BLE001 - any error of the user's function is a step error
            return Failed(exc)

    async def apply_async(
        self,
        record: Record,
        fn: Callable[[Run[T, S]], Any],
        allowed: Sequence[int],
        *,
        timeout: float = 0.0,  # noqa: ASYNC109 - the step's step_timeout, as for apply
        kind: str = "step",
    ) -> Write | Failed | None:
        """`apply` for an ``async def`` step, awaited on the engine's loop beside other runs' steps."""
        run = self.run_of(record)
        if isinstance(run, Failed):
            return run
        if self.tracing is None:  # the common case, as in `apply`: no span, no context manager
            return await self._call_async(record, run, fn, allowed, timeout)
        with self._traced(kind, record) as finish:
            return finish(await self._call_async(record, run, fn, allowed, timeout))

    async def _call_async(
        self,
        record: Record,
        run: Run[T, S],
        fn: Callable[[Run[T, S]], Any],
        allowed: Sequence[int],
        timeout: float,  # noqa: ASYNC109 - the step's step_timeout, as for apply
    ) -> Write | Failed | None:
        try:
            result = await _bounded(fn(run), timeout, run.run_id)
            return self.transitions.result(record, run, result, allowed)
        except Exception as exc:  # noqa: BLE001 - any error of the user's function is a step error
            return Failed(exc)

    def run_awaitable(self, awaitable: Awaitable[Any]) -> Any:
        """Wait for what an ``async def`` hook returned (on the engine's loop when hosted)."""
        return self.aio.run(awaitable, hosted=self._host is not None)

    def run_of(self, record: Record) -> Run[T, S] | Failed:
        """The `Run` of ``record``, or `Failed` with `CorruptRecord` when its object or status cannot be read."""
        try:
            return self.transitions.run(record)
        except Exception as exc:  # noqa: BLE001 - the stored run itself is unreadable: no retry mends it
            msg = f"the stored run {record.run_id} cannot be read (version {record.meta.version}): {exc}"
            return Failed(CorruptRecord(msg, run_id=record.run_id))

    def unknown_status(self, record: Record) -> CorruptRecord | None:
        """`CorruptRecord` when ``record``'s stored status is not in the workflow's enum, else ``None``.

        Readers that decide by the status before any user function runs (a consumer whose
        event names another status, a timeout, a callback, a waiter) ask this, so such a
        run is reported and paused (`fail`) like one whose object does not decode, instead
        of being skipped as "elsewhere" for ever.
        """
        if self.transitions.knows(record.status):
            return None
        enum_name = self.config.status_type.__name__
        msg = (
            f"the stored run {record.run_id} cannot be read (version {record.meta.version}): "
            f"status {record.status} is not a {enum_name}"
        )
        return CorruptRecord(msg, run_id=record.run_id)

    @contextlib.contextmanager
    def _traced(self, kind: str, record: Record) -> Iterator[Callable[[Write | Failed | None], Write | Failed | None]]:
        """A span around a user function when traced; yields what records its outcome (and returns it)."""
        tracing = self.tracing
        if tracing is None:
            yield _as_is
            return
        with tracing.function(kind, record, self.transitions.describe(record.status)) as span:

            def finish(outcome: Write | Failed | None) -> Write | Failed | None:
                next_status = None
                if isinstance(outcome, Write) and outcome.record.status != record.status:
                    next_status = self.transitions.describe(outcome.record.status)
                tracing.outcome(span, next_status, outcome.error if isinstance(outcome, Failed) else None)
                return outcome

            yield finish

    def fail_now(
        self, process: str, record: Record, error: BaseException | None, limit: int, *, fence: Fence | None = None
    ) -> None:
        """`fail` for a caller outside a consumer's batch (a callback, a waiter, the timeout poller).

        The pause, if the rule asks for one, is committed at once; a refused one means the
        run moved meanwhile (nothing to pause: the next read sees where it is).
        """
        pause = self.fail(process, record, error, limit)
        if pause is not None:
            self.writer.commit((pause,), fence=fence)

    def fail(self, process: str, record: Record, error: BaseException | None, limit: int) -> Write | None:
        """A user function failed on ``record`` in ``process``: the pause to store, or ``None`` to retry.

        Logs the error (``None``: the run was being handled when its node died), then
        applies the one failure rule (`reached_limit`). A run whose stored object or status
        cannot be read (`CorruptRecord`) is paused at once, whatever the limit: retrying
        cannot mend it, and the pause reports it (its reason says why) until the data or
        the code is fixed and the run resumed.
        """
        # Which run this concerns, as fields of their own (a JSON log formatter writes them).
        context = {
            "workflow": self.name,
            "process_name": process,
            "run_id": record.run_id,
            "foreign_id": record.foreign_id,
            "status": record.status,
        }
        if isinstance(error, CorruptRecord):
            self.metrics.corrupt_records.labels(self.name, process).inc()
            self.log.error("%s/%s: %s; the run is paused", self.name, process, error, extra=context)
            return self.transitions.next(record, run_state=RunState.PAUSED, reason=f"{CORRUPT_PAUSE_REASON}: {error}")
        if error is None:
            self.log.warning(
                "%s/%s: run %s was being handled when a node died", self.name, process, record.run_id, extra=context
            )
        else:
            self.log.warning(
                "%s/%s: step error for run %s (foreign id %s): %r",
                self.name,
                process,
                record.run_id,
                record.foreign_id,
                error,
                exc_info=error if self.log.isEnabledFor(logging.DEBUG) else None,  # the traceback only at DEBUG
                extra=context,
            )
        if not reached_limit(self.error_counter, process, record, limit):
            return None
        self.log.error("%s/%s: run %s paused after %d errors", self.name, process, record.run_id, limit, extra=context)
        return self.transitions.next(record, run_state=RunState.PAUSED, reason=AUTO_PAUSE_REASON)

    # -- reading runs ---------------------------------------------------------------------------

    def history(self, run_id: str) -> list[Record]:
        """Every stored version of the run the store keeps (only the current one without `Snapshots`)."""
        snapshots = self.capabilities.snapshots
        if snapshots is not None:
            return snapshots.snapshots(run_id)
        try:
            return [self.record_store.lookup(run_id)]
        except RecordNotFound:
            return []
