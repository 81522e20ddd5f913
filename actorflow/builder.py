"""`Builder`: declare a workflow's steps, callbacks, timeouts, connectors and hooks, then build."""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from actorflow.clock import Clock, SystemClock
from actorflow.codec import MAX_OBJECT_BYTES, Codec, make_codec
from actorflow.errors import BuildError
from actorflow.graph import Graph
from actorflow.options import Options, OutboxOptions, duration
from actorflow.runstate import RunState
from actorflow.specs import (
    CallbackSpec,
    ConnectorSpec,
    HookFunc,
    StepSpec,
    TimeoutPair,
    TimeoutSpec,
    TimerFunc,
)
from actorflow.status import RESERVED
from actorflow.workflow import Workflow, WorkflowConfig

if TYPE_CHECKING:
    from actorflow.capabilities import ErrorCounter
    from actorflow.event import ConnectorEvent
    from actorflow.protocols import ConnectorConstructor, EventStreamer, RecordStore, RoleScheduler, TimeoutStore
    from actorflow.record import Run, TypedRecord

__all__ = ["Builder"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

StepFunc = Callable[["Run[T, S]"], "S | Awaitable[S]"]  # a def or an async def


class Builder(Generic[T, S]):
    """Declares a workflow over objects of type ``T`` and statuses of the IntEnum ``S``.

    Args:
        name: the workflow's name (topics and roles are derived from it).
        object_type: the run's object type; ``object_type()`` is a run's default object.
        status_type: the IntEnum of statuses (0, -1 and -2 are reserved).
        codec: how objects become bytes: a `Codec`, an ``(encode, decode)`` pair, or
            ``None`` for JSON of a dataclass. Either way an object that is not an
            ``object_type`` is refused with `ObjectTypeError` before it is stored (the JSON
            codec checks each field against its type hint too).
    """

    def __init__(
        self,
        name: str,
        object_type: type[T],
        status_type: type[S],
        codec: Codec[T] | tuple[Callable[[T], bytes], Callable[[bytes], T]] | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            msg = "a workflow needs a non-empty name"
            raise BuildError(msg)
        if not (isinstance(status_type, type) and issubclass(status_type, int)):
            msg = f"status_type must be an IntEnum, got {status_type!r}"
            raise BuildError(msg)
        for member in status_type:
            if int(member) in RESERVED:
                msg = f"{status_type.__name__}.{member.name} = {int(member)} is reserved (0, -1 and -2); start at 1"
                raise BuildError(msg)
        self.name = name
        self.object_type = object_type
        self.status_type = status_type
        self._codec = codec  # made at build, with the size limit (`make_codec`)
        self._graph = Graph()
        self._steps: dict[int, StepSpec[T, S]] = {}
        self._callbacks: dict[int, list[CallbackSpec[T, S]]] = {}
        self._timeouts: dict[int, TimeoutSpec[T, S]] = {}
        self._connectors: dict[str, ConnectorSpec[T, S]] = {}
        self._hooks: dict[RunState, HookFunc] = {}

    def _edges(self, frm: S, to: tuple[S, ...]) -> tuple[int, ...]:
        self._check_status(frm)
        for dest in to:
            self._check_status(dest)
            self._graph.add(int(frm), int(dest))
        return tuple(int(d) for d in to)

    def _check_status(self, status: S) -> None:
        if not isinstance(status, self.status_type):
            msg = f"{status!r} is not a {self.status_type.__name__}"
            raise BuildError(msg)

    def add_step(self, status: S, fn: StepFunc[T, S], *to: S) -> StepSpec[T, S]:
        """Consume runs at ``status`` with ``fn``, which returns one of ``to``.

        Returns the step, whose ``.with_options(...)`` sets its options.
        """
        if int(status) in self._steps:
            msg = (
                f"add_step({status!r}, ...) already exists: only one step can consume a status; "
                "branch inside the step and list every destination instead"
            )
            raise BuildError(msg)
        if not callable(fn):
            msg = f"the step for {status!r} is not callable: {fn!r}"
            raise BuildError(msg)
        spec = StepSpec(status=status, fn=fn, destinations=self._edges(status, to))
        self._steps[int(status)] = spec
        return spec

    def step(self, status: S, *to: S) -> Callable[[StepFunc[T, S]], StepFunc[T, S]]:
        """Decorator form of `add_step`."""

        def register(fn: StepFunc[T, S]) -> StepFunc[T, S]:
            self.add_step(status, fn, *to)
            return fn

        return register

    def add_callback(self, status: S, fn: Callable[[Run[T, S], bytes], S | Awaitable[S]], *to: S) -> None:
        """On ``wf.callback(foreign_id, status, payload)``, ``fn(run, payload)`` picks one of ``to``."""
        spec = CallbackSpec(status=status, fn=fn, destinations=self._edges(status, to))
        self._callbacks.setdefault(int(status), []).append(spec)

    def add_timeout(
        self,
        status: S,
        timer: TimerFunc,
        fn: Callable[[Run[T, S], datetime], S | Awaitable[S]],
        *to: S,
    ) -> TimeoutSpec[T, S]:
        """Time runs out at ``status``: at the timer's expiry, ``fn(run, now)`` picks one of ``to``.

        When a run reaches ``status``, ``timer(run, now)`` sets the expiry (``None``: no
        timeout for that run). Needs a timeout store at build.

        Several timeouts on one status are independent: each expiry runs only its own
        ``fn``, and only while the run is still on the visit to ``status`` that set it.
        A stored timeout names its function by position (the order of these calls per
        status), so a deployed workflow should only add timeouts after its existing ones.
        """
        pair = TimeoutPair(timer=timer, fn=fn, destinations=self._edges(status, to))
        spec = self._timeouts.setdefault(int(status), TimeoutSpec(status=status))
        spec.pairs.append(pair)
        return spec

    def add_connector(
        self,
        name: str,
        constructor: ConnectorConstructor,
        fn: Callable[[Workflow[T, S], ConnectorEvent], None],
    ) -> ConnectorSpec[T, S]:
        """Consume an external stream: ``fn(workflow, event)`` for each of its events."""
        if name in self._connectors:
            msg = f"connector names need to be unique: {name!r} is already added"
            raise BuildError(msg)
        spec: ConnectorSpec[T, S] = ConnectorSpec(name=name, constructor=constructor, fn=fn)
        self._connectors[name] = spec
        return spec

    def on_pause(self, hook: Callable[[TypedRecord[T, S]], Awaitable[None] | None]) -> None:
        """Call ``hook(record)`` when a run is paused (replaces an earlier pause hook)."""
        self._hooks[RunState.PAUSED] = hook

    def on_cancel(self, hook: Callable[[TypedRecord[T, S]], Awaitable[None] | None]) -> None:
        """Call ``hook(record)`` when a run is cancelled."""
        self._hooks[RunState.CANCELLED] = hook

    def on_complete(self, hook: Callable[[TypedRecord[T, S]], Awaitable[None] | None]) -> None:
        """Call ``hook(record)`` when a run completes (reaches a terminal status)."""
        self._hooks[RunState.COMPLETED] = hook

    def build(
        self,
        event_streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        *,
        timeout_store: TimeoutStore | None = None,
        defaults: Options | None = None,
        debug: bool = False,
        clock: Clock | None = None,
        outbox: OutboxOptions | bool = True,
        pause_retry: float | timedelta | None = 3600.0,
        custom_delete: Callable[[T], T] | None = None,
        error_counter: ErrorCounter | None = None,
        max_object_bytes: int | None = MAX_OBJECT_BYTES,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        tracing: Any = False,
    ) -> Workflow[T, S]:
        """Check the definition and make the `Workflow`. Starts nothing.

        Args:
            event_streamer: carries events between processes.
            record_store: keeps runs and their outbox.
            role_scheduler: decides which node works each role.
            timeout_store: keeps timeouts; required when a timeout is added.
            defaults: options every process inherits (merged over the original's defaults).
            debug: log every event handled at DEBUG level.
            clock: the time source (a `FakeClock` in tests).
            outbox: the outbox relay's options, or ``False`` when another process relays.
            pause_retry: resume paused runs after this long (more than 0); ``None`` disables it.
            custom_delete: replaces a run's object when its data is deleted.
            error_counter: where step errors are counted (default: in memory, or the
                record store when it can count durably).
            max_object_bytes: the largest encoded object, and callback payload, in bytes
                (default 1 MiB; ``None``: no limit); larger ones raise `ObjectTooLarge`
                and are not stored.
            logger: where the workflow's processes log (step errors, pauses, skipped
                events...), as the original's ``WithLogger``; a `logging.LoggerAdapter`
                adds your context to every record. Default: the ``actorflow`` logger.
            tracing: ``True`` traces the workflow with OpenTelemetry's global tracer
                provider, or give a ``TracerProvider``: a span per trigger, step,
                callback and timeout, one trace per run across nodes (`actorflow.otel`,
                the ``otel`` extra). ``False`` (the default) traces nothing.
        """
        if self._timeouts and timeout_store is None:
            msg = (
                f"workflow {self.name!r} has timeouts but no timeout store: "
                "pass build(..., timeout_store=MemoryTimeoutStore()) or another TimeoutStore"
            )
            raise BuildError(msg)
        starting = self._graph.starting()
        if not starting:
            msg = f"workflow {self.name!r} requires at least one starting point: add a step"
            raise BuildError(msg)
        if max_object_bytes is not None and (
            not isinstance(max_object_bytes, int) or isinstance(max_object_bytes, bool) or max_object_bytes < 1
        ):
            msg = f"max_object_bytes must be a positive int or None, got {max_object_bytes!r}"
            raise BuildError(msg, option="max_object_bytes", value=max_object_bytes)
        merged = Options() if defaults is None else defaults
        config = WorkflowConfig(
            name=self.name,
            object_type=self.object_type,
            status_type=self.status_type,
            codec=make_codec(self.object_type, self._codec, max_bytes=max_object_bytes),
            graph=self._graph,
            steps=dict(self._steps),
            callbacks={k: list(v) for k, v in self._callbacks.items()},
            timeouts=dict(self._timeouts),
            connectors=list(self._connectors.values()),
            hooks=dict(self._hooks),
            defaults=merged,
            outbox=(OutboxOptions() if outbox is True else outbox) or None,
            pause_retry=None if pause_retry is None else duration("pause_retry", pause_retry, positive=True),
            custom_delete=custom_delete,
            clock=clock or SystemClock(),
            debug=debug,
            default_start=starting[0],
            error_counter=error_counter,
            max_object_bytes=max_object_bytes,
            logger=logger,
            tracing=_tracing(tracing),
        )
        return Workflow(config, event_streamer, record_store, role_scheduler, timeout_store)


def _tracing(tracing: Any) -> Any:
    """The `actorflow.otel.Tracing` that ``build(tracing=...)`` asks for, or ``None``."""
    if tracing is False or tracing is None:
        return None
    try:
        from actorflow.otel import Tracing  # noqa: PLC0415 - the otel extra, only when asked for
    except ImportError as exc:
        msg = f'tracing needs OpenTelemetry: pip install "actorflow[otel]" ({exc})'
        raise BuildError(msg) from exc
    return Tracing(None if tracing is True else tracing)
