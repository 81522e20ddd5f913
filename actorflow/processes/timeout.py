"""Timeouts: an inserter that sets a run's timers, and a poller that fires them.

The inserter reads the status topic and stores a timeout per timer when a run reaches
the status; the poller runs the timeout functions of those that expired.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from actorflow.capabilities import FencedTimeouts
from actorflow.engine import Failed
from actorflow.errors import CorruptRecord, RecordNotFound, StaleTerm, TimeoutNotFound
from actorflow.event import Event
from actorflow.log import logger
from actorflow.processes.base import Process
from actorflow.processes.consumer import EventConsumer, Outcome
from actorflow.record import Record, Run

if TYPE_CHECKING:
    from collections.abc import Callable

    from actorflow.protocols import TimeoutRecord, TimeoutStore
    from actorflow.specs import TimeoutSpec

__all__ = ["TimeoutInserter", "TimeoutPoller"]


def _fenced(process: Process, store: TimeoutStore) -> FencedTimeouts | None:
    """``store`` when it can check ``process``'s lease in its own transactions (fencing), else None."""
    if isinstance(store, FencedTimeouts) and store.fences_with(process.engine.role_scheduler):
        return store
    return None


class TimeoutInserter(EventConsumer):
    """Reads the status topic; for each timer of the status, stores a timeout for the run."""

    def __init__(self, *args: Any, spec: TimeoutSpec[Any, Any], store: TimeoutStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.store = store
        self._fenced = _fenced(self, store)

    def handle(self, event: Event) -> Outcome:
        """Create the run's timeouts (a timer that returns ``None`` sets none)."""
        status = int(self.spec.status)
        loaded = self.load(event, status)
        if not isinstance(loaded, Record):
            return loaded
        record = loaded
        paused = self.suspect_crash(record)
        if paused is not None:
            return paused
        now = self.engine.clock.now()
        try:
            run = self.engine.transitions.run(record)
            expiries = [pair.timer(run, now) for pair in self.spec.pairs]
        except Exception as exc:  # noqa: BLE001 - a user timer failed: a step error
            return self.failed(record, exc)
        args = (self.engine.name, record.foreign_id, record.run_id, status)
        for expire_at in expiries:
            if expire_at is None:
                continue
            if self._fenced is None or self.fence is None:
                self.store.create(*args, expire_at, created_at=now)
                continue
            try:
                self._fenced.create(*args, expire_at, created_at=now, fence=self.fence)
            except StaleTerm:
                # The role moved on: the new holder handles this event again (its ack is
                # not made: the batch stops at the lost lease) and creates the timeouts.
                self.fenced_out([record.run_id])
                return None
        return None


class TimeoutPoller(Process):
    """Fires expired timeouts of one status, by the timeout's own run."""

    def __init__(self, *args: Any, spec: TimeoutSpec[Any, Any], store: TimeoutStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.store = store
        self._fenced = _fenced(self, store)

    def tick(self, budget: float) -> None:
        """Handle the expired timeouts, then wait for the next poll (or a clock change)."""
        if self.backing_off(budget):
            return
        clock = self.engine.clock
        now = clock.now()
        for timeout in self.store.list_valid(self.engine.name, int(self.spec.status), now):
            if not self.holding():
                return
            try:
                fired = self._fire(timeout, now)
            except StaleTerm:
                self.fenced_out([timeout.run_id])  # the timeout stays valid: the new holder fires it
                return
            if not fired:
                # As the original: a failing timeout function backs the poller off for
                # err_backoff, then this timeout (still valid) is tried first again.
                self.back_off(self.options.err_backoff)
                return
        clock.wait_until(now + timedelta(seconds=self.options.polling_frequency), timeout=budget)

    def _fire(self, timeout: TimeoutRecord, now: datetime) -> bool:
        """Fire (or drop) one expired timeout; False when the user's function failed."""
        try:
            record = self.engine.record_store.lookup(timeout.run_id)
        except RecordNotFound:
            self._cancel(timeout)
            return True
        except CorruptRecord as exc:
            self.metrics.malformed.inc()
            logger.error(
                "%s: run %s cannot be read; timeout %s dropped: %s", self.name, timeout.run_id, timeout.id, exc
            )
            self._complete(timeout)
            return True
        if record.status != timeout.status or record.run_state.finished:
            self._cancel(timeout)
            return True
        if record.run_state.stopped:
            return True  # paused: the timeout fires once the run is resumed
        writer = self.engine.writer
        for pair in self.spec.pairs:

            def call(run: Run[Any, Any], fn: Callable[[Run[Any, Any], datetime], Any] = pair.fn) -> Any:
                return fn(run, now)

            result = self.engine.apply(record, call, pair.destinations)
            if isinstance(result, Failed):
                self.metrics.error()
                pause = self.engine.fail(self.name, record, result.error, self.options.pause_after_err_count)
                if pause is not None:
                    writer.commit((pause,), fence=self.fence)  # refused: the run moved meanwhile, nothing to pause
                return False  # the timeout stays valid and is tried again after the back-off
            if result is None:
                continue
            if writer.commit((result,), fence=self.fence)[0] is not None:
                return True  # the run moved meanwhile; the next poll sees where it is
            break
        else:
            self.metrics.skipped("next value specified skip")
        # Fired, or every function skipped: either way it must not fire again.
        self._complete(timeout)
        return True

    def _complete(self, timeout: TimeoutRecord) -> None:
        """Mark ``timeout`` done, under the role's lease when the store can check it (`StaleTerm` if lost)."""
        if self._fenced is not None and self.fence is not None:
            self._fenced.complete(timeout.id, fence=self.fence)
        else:
            self.store.complete(timeout.id)

    def _cancel(self, timeout: TimeoutRecord) -> None:
        with contextlib.suppress(TimeoutNotFound):
            if self._fenced is not None and self.fence is not None:
                self._fenced.cancel(timeout.id, fence=self.fence)
            else:
                self.store.cancel(timeout.id)
