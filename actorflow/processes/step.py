"""Step consumers: one per (status, shard). Run the user's step and store where it leads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actorflow.engine import Failed
from actorflow.event import Event
from actorflow.processes.consumer import EventConsumer, Outcome, Skipped, Work
from actorflow.record import Record, Run

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["StepConsumer"]


class StepConsumer(EventConsumer):
    """Consumes one status's topic (one shard of it) with the user's step function."""

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

    def handle(self, event: Event) -> Outcome:
        """Load the run; the step itself is `Work` (it may run beside other runs' steps)."""
        record = self.load(event, self.status)
        if not isinstance(record, Record):
            return record
        paused = self.suspect_crash(record)
        if paused is not None:
            return paused
        engine, fn, destinations, timeout = self.engine, self.fn, self.destinations, self.options.step_timeout

        def step() -> Any:
            return engine.apply(record, fn, destinations, timeout=timeout)

        def then(result: Any) -> Outcome:
            if isinstance(result, Failed):
                return self.failed(record, result.error)
            if result is None:
                return Skipped("next value specified skip")
            return result  # type: ignore[no-any-return]

        return Work(step, then)
