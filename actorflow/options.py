"""Process options: what a user sets is merged over the workflow's defaults, never zeroed."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from typing import Any

from actorflow.errors import BuildError

__all__ = ["Options", "OutboxOptions", "ResolvedOptions", "duration"]

Duration = float | timedelta


def duration(where: str, value: Duration, *, positive: bool = False) -> float:
    """``value`` (seconds or a `timedelta`) in seconds, checked.

    Raises `BuildError` (a `ValueError`) naming ``where`` for a negative duration, a zero
    one when ``positive``, or one that is not a finite number. The one check of every
    duration an option or a builder argument takes.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        msg = f"{where} must be seconds or a timedelta, got {value!r}"
        raise BuildError(msg, option=where, value=value)
    if not math.isfinite(seconds):
        msg = f"{where} must be a finite duration, got {value!r}"
        raise BuildError(msg, option=where, value=value)
    if seconds < 0 or (positive and seconds == 0):
        bound = "greater than 0" if positive else "0 or more"
        msg = f"{where} must be {bound}, got {value!r}"
        raise BuildError(msg, option=where, value=value)
    return seconds


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """Options with every value decided; durations in seconds."""

    parallel_count: int = 1
    polling_frequency: float = 0.5
    err_backoff: float = 1.0
    lag: float = 0.0
    lag_alert: float = 1800.0
    pause_after_err_count: int = 0
    step_timeout: float = 0.0
    max_in_flight: int = 32
    batch_size: int = 100
    commit_interval: float = 0.005

    def __post_init__(self) -> None:
        _check_fields(self)


_DURATIONS = frozenset({"polling_frequency", "err_backoff", "lag", "lag_alert", "step_timeout", "commit_interval"})
_POSITIVE = frozenset({"polling_frequency"})  # 0 would poll in a busy loop
_AT_LEAST_ONE = frozenset({"max_in_flight", "batch_size", "lookup_limit"})


def _checked(owner: str, name: str, value: Any) -> Any:
    """An option's value checked (durations in seconds); `BuildError` when it is out of range."""
    where = f"{owner}.{name}"
    if name in _DURATIONS:
        return duration(where, value, positive=name in _POSITIVE)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        msg = f"{where} must be a non-negative int, got {value!r}"
        raise BuildError(msg, option=where, value=value)
    if name in _AT_LEAST_ONE and value < 1:
        msg = f"{where} must be at least 1, got {value!r}"
        raise BuildError(msg, option=where, value=value)
    return value


def _check_fields(options: ResolvedOptions | OutboxOptions) -> None:
    """Check a frozen dataclass of options in place (durations given as timedeltas become seconds)."""
    owner = type(options).__name__
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        checked = _checked(owner, field.name, value)
        if checked is not value:
            object.__setattr__(options, field.name, checked)


_DEFAULTS = ResolvedOptions()


class Options:
    """Options of a process (step, timeout, connector) or of a whole workflow.

    Reading an option gives its value, falling back to the original's defaults;
    only the options given here override the ones they are merged over.

    Args:
        parallel_count: number of shards (consumers) for the step; 1 means one.
        polling_frequency: idle poll interval for adapters that cannot push (seconds).
        err_backoff: wait after a step error before retrying the event (seconds).
        lag: handle an event only once it is at least this old (seconds).
        lag_alert: raise ``workflow_process_lag_alert`` past this lag; 0 disables it
            (unset with a ``lag``: 30 minutes plus the lag, as the original).
        pause_after_err_count: pause a run after this many step errors; 0 never pauses.
        step_timeout: a step still running after this long is abandoned and counts as a
            step error (retried after ``err_backoff``; its thread runs on, its result is
            discarded); 0, the default, waits for as long as the step takes.
        max_in_flight: steps of different runs one shard may run at once (default 32).
            Steps that return quickly (under about 2 ms, CPU-bound work) run one at a time
            on the shard's own thread whatever this says; steps that take longer (waiting
            on I/O) run on up to this many threads beside each other. One run's events
            are always handled one after another. 1 runs every step on the shard's thread.
        batch_size: events read, and step results committed together, at most (default 100).
        commit_interval: the longest a finished step's result waits for others to share
            its commit (default 5 ms); it is committed sooner when nothing else is in hand.
    """

    __slots__ = ("_set",)

    def __init__(
        self,
        *,
        parallel_count: int | None = None,
        polling_frequency: Duration | None = None,
        err_backoff: Duration | None = None,
        lag: Duration | None = None,
        lag_alert: Duration | None = None,
        pause_after_err_count: int | None = None,
        step_timeout: Duration | None = None,
        max_in_flight: int | None = None,
        batch_size: int | None = None,
        commit_interval: Duration | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "parallel_count": parallel_count,
            "polling_frequency": polling_frequency,
            "err_backoff": err_backoff,
            "lag": lag,
            "lag_alert": lag_alert,
            "pause_after_err_count": pause_after_err_count,
            "step_timeout": step_timeout,
            "max_in_flight": max_in_flight,
            "batch_size": batch_size,
            "commit_interval": commit_interval,
        }
        self._set: dict[str, Any] = {
            name: _checked("Options", name, value) for name, value in given.items() if value is not None
        }

    @property
    def given(self) -> frozenset[str]:
        """Names of the options set explicitly."""
        return frozenset(self._set)

    def given_values(self) -> dict[str, Any]:
        """The options set explicitly, by name (in seconds for durations)."""
        return dict(self._set)

    def over(self, base: Options | ResolvedOptions) -> Options:
        """These options merged over ``base`` (these win where set)."""
        base_values = base.given_values() if isinstance(base, Options) else dataclasses.asdict(base)
        return Options(**{**base_values, **self._set})

    def resolve(self) -> ResolvedOptions:
        """Every value decided: given ones, else the original's defaults.

        As the original's ``ConsumeLag``: a lag given without a lag alert moves the alert
        to the default alert plus the lag, so a step that waits as told does not alert.
        """
        values = dict(self._set)
        if values.get("lag") and "lag_alert" not in values:
            values["lag_alert"] = _DEFAULTS.lag_alert + values["lag"]
        return dataclasses.replace(_DEFAULTS, **values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in ResolvedOptions.__dataclass_fields__:
            raise AttributeError(name)
        return self._set.get(name, getattr(_DEFAULTS, name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and self._set == other.given_values()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._set.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._set.items())
        return f"Options({inner})"

    # Typed accessors for mypy (``__getattr__`` is Any).
    parallel_count: int
    polling_frequency: float
    err_backoff: float
    lag: float
    lag_alert: float
    pause_after_err_count: int
    step_timeout: float
    max_in_flight: int
    batch_size: int
    commit_interval: float


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxOptions:
    """Options of the outbox relay (the original's outbox defaults); durations in seconds or timedeltas."""

    polling_frequency: float = 0.25
    err_backoff: float = 0.5
    lag_alert: float = 60.0
    lookup_limit: int = 1000

    def __post_init__(self) -> None:
        _check_fields(self)
