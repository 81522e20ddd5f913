"""What a builder records: steps, callbacks, timeouts, connectors, hooks and schedules."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from actorflow.options import Options
from actorflow.options import duration as checked_duration

if TYPE_CHECKING:
    from actorflow.event import ConnectorEvent
    from actorflow.protocols import ConnectorConstructor
    from actorflow.record import Run, TypedRecord

__all__ = [
    "CallbackSpec",
    "ConnectorSpec",
    "ScheduleSpec",
    "StepSpec",
    "TimeoutPair",
    "TimeoutSpec",
    "TimerFunc",
    "duration_timer",
    "time_timer",
]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

TimerFunc = Callable[["Run[Any, Any]", datetime], "datetime | None"]

_TIMEOUT_REFUSED = {"parallel_count": "Cannot configure parallel timeout", "lag": "Cannot configure lag for timeout"}
_CONNECTOR_ALLOWED = frozenset({"parallel_count", "err_backoff", "lag", "lag_alert"})


class _WithOptions:
    """``.with_options(...)`` for what the builder returns: the options of that process."""

    options: Options
    _refused: dict[str, str] = {}  # noqa: RUF012 - class-level default, never mutated
    _only: frozenset[str] | None = None

    def with_options(self, options: Options | None = None, /, **kwargs: Any) -> Self:
        """Set this process's options; unset ones are inherited from the workflow's defaults."""
        given = Options(**kwargs) if options is None else options
        if options is not None and kwargs:
            given = Options(**kwargs).over(options)
        for name, message in self._refused.items():
            if name in given.given:
                raise ValueError(message)
        if self._only is not None:
            extra = given.given - self._only
            if extra:
                msg = f"these options do not apply here: {', '.join(sorted(extra))}"
                raise ValueError(msg)
        self.options = given
        return self


@dataclasses.dataclass(eq=False)
class StepSpec(_WithOptions, Generic[T, S]):
    """A step: consume ``status``, call ``fn``, move to one of ``destinations``."""

    status: S
    fn: Callable[[Run[T, S]], S | Awaitable[S]]
    destinations: tuple[int, ...]
    options: Options = dataclasses.field(default_factory=Options)


@dataclasses.dataclass(eq=False)
class CallbackSpec(Generic[T, S]):
    """A callback: on ``wf.callback(..., status, payload)``, ``fn(run, payload)`` moves the run."""

    status: S
    fn: Callable[[Run[T, S], bytes], S | Awaitable[S]]
    destinations: tuple[int, ...]


@dataclasses.dataclass(eq=False)
class TimeoutPair(Generic[T, S]):
    """One timer and the function that runs when it expires."""

    timer: TimerFunc
    fn: Callable[[Run[T, S], datetime], S | Awaitable[S]]
    destinations: tuple[int, ...]


@dataclasses.dataclass(eq=False)
class TimeoutSpec(_WithOptions, Generic[T, S]):
    """The timeouts of one status (their options are shared by the status)."""

    status: S
    pairs: list[TimeoutPair[T, S]] = dataclasses.field(default_factory=list)
    options: Options = dataclasses.field(default_factory=Options)
    _refused = _TIMEOUT_REFUSED


@dataclasses.dataclass(eq=False)
class ConnectorSpec(_WithOptions, Generic[T, S]):
    """A connector: events of an external stream handed to ``fn(workflow, event)``.

    ``fn`` is typed with the `Workflow` facade by `Builder.add_connector`; here its first
    argument is opaque (the engine hands it its ``api``), which keeps this module below
    the facade.
    """

    name: str
    constructor: ConnectorConstructor
    fn: Callable[[Any, ConnectorEvent], None]
    options: Options = dataclasses.field(default_factory=Options)
    _only = _CONNECTOR_ALLOWED


@dataclasses.dataclass(eq=False)
class ScheduleSpec(Generic[T]):
    """A cron schedule that triggers ``foreign_id``."""

    foreign_id: str
    spec: str
    initial_value: T | None = None
    filter: Callable[[datetime], bool] | None = None
    registered_at: datetime | None = None  # the first slot counts from here when there is no run yet


HookFunc = Callable[["TypedRecord[Any, Any]"], "Awaitable[None] | None"]


def duration_timer(duration: timedelta | float) -> TimerFunc:
    """A timer that expires ``duration`` after the run reached the status."""
    delta = timedelta(seconds=checked_duration("the timeout's duration", duration))  # never negative

    def timer(_run: Run[Any, Any], now: datetime) -> datetime:
        return now + delta

    return timer


def time_timer(when: datetime) -> TimerFunc:
    """A timer that expires at a fixed time."""

    def timer(_run: Run[Any, Any], _now: datetime) -> datetime:
        return when

    return timer
