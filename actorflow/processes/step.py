"""Step consumers: one per (status, shard). Run the user's step and store where it leads."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from actorflow.engine import Failed, Write
from actorflow.engine.aio import is_async
from actorflow.event import Event
from actorflow.processes.consumer import EventConsumer, Outcome, Skipped, Work
from actorflow.record import Record, Run

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["StepConsumer"]


class StepConsumer(EventConsumer):
    """Consumes one status's topic (one shard of it) with the user's step function."""

    takes_handoff = True  # a step's latency is the run's: take this engine's events from its writer

    def __init__(
        self,
        *args: Any,
        status: int,
        fn: Callable[[Run[Any, Any]], Any],
        destinations: Sequence[int],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.status = status
        self.fn = fn
        self.destinations = tuple(destinations)
        self.is_async = is_async(fn)  # an async def step: awaited on the engine's loop

    def handle(self, event: Event) -> Outcome:
        """Load the run; the step itself is `Work` (it may run beside other runs' steps)."""
        record = self.load(event, self.status)
        if not isinstance(record, Record):
            return record
        paused = self.suspect_crash(record)
        if paused is not None:
            return paused
        if self.is_async:
            return Work(
                functools.partial(
                    self.engine.apply_async, record, self.fn, self.destinations, timeout=self.options.step_timeout
                ),
                functools.partial(self._outcome, record),
                awaitable=True,
            )
        return Work(
            functools.partial(self.engine.apply, record, self.fn, self.destinations, timeout=self.options.step_timeout),
            functools.partial(self._outcome, record),
        )

    def _outcome(self, record: Record, result: Write | Failed | None) -> Outcome:
        """What the step's result comes to (on the consumer's thread): its write, a skip, or the failure rule."""
        if isinstance(result, Failed):
            return self.failed(record, result.error)
        if result is None:
            return Skipped("next value specified skip")
        return result
