"""Step consumers: one per (status, shard). Run the user's step and store where it leads."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from actorflow import transitions
from actorflow.event import Event
from actorflow.processes.base import logger
from actorflow.processes.consumer import EventConsumer, Outcome, Retry, Skipped
from actorflow.record import Record, Run
from actorflow.runstate import RunState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["StepConsumer", "fail_step"]


def fail_step(consumer: EventConsumer, record: Record, error: BaseException) -> Outcome:
    """A user function failed for ``record``: count it, pause at the limit, else retry.

    Shared by every process that runs user code on an event (steps, timeout inserters).
    """
    # A step error is expected behaviour (it is retried): the traceback only at DEBUG.
    logger.warning(
        "%s/%s: step error for run %s (foreign id %s): %r",
        consumer.wf.name,
        consumer.name,
        record.run_id,
        record.foreign_id,
        error,
        exc_info=error if logger.isEnabledFor(logging.DEBUG) else None,
    )
    consumer.metrics.error()
    limit = consumer.options.pause_after_err_count
    if limit <= 0:
        return Retry(consumer.options.err_backoff)
    key = transitions.error_key(consumer.name, record)
    consumer.erroring[record.run_id] = key
    if consumer.wf.error_counter.add_error(key, record.run_id) >= limit:
        return transitions.next_record(
            consumer.wf, record, run_state=RunState.PAUSED, reason=transitions.AUTO_PAUSE_REASON
        )
    return Retry(consumer.options.err_backoff)


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
        """Load the run, run the step, and return the write its result asks for."""
        loaded = self.load(event, self.status)
        if not isinstance(loaded, Record):
            return loaded
        record = loaded
        paused = self.suspect_crash(record)
        if paused is not None:
            return paused
        try:
            run = transitions.build_run(self.wf, record)
            write = transitions.result_record(self.wf, record, run, self.fn(run), self.destinations)
        except Exception as exc:  # noqa: BLE001 - any user error is a step error
            return fail_step(self, record, exc)
        if write is None:
            return Skipped("next value specified skip")
        return write
