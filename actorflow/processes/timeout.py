"""Timeouts: an inserter that sets a run's timers, and a poller that fires them.

The inserter reads the status topic and stores a timeout per timer when a run reaches
the status; the poller runs the timeout functions of those that expired.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from actorflow import transitions
from actorflow.errors import CorruptRecord, RecordNotFound, TimeoutNotFound, VersionConflict
from actorflow.event import Event
from actorflow.processes.base import Process, logger
from actorflow.processes.consumer import EventConsumer, Outcome
from actorflow.processes.step import fail_step
from actorflow.record import Record

if TYPE_CHECKING:
    from actorflow.protocols import TimeoutRecord, TimeoutStore
    from actorflow.specs import TimeoutSpec

__all__ = ["TimeoutInserter", "TimeoutPoller"]


class TimeoutInserter(EventConsumer):
    """Reads the status topic; for each timer of the status, stores a timeout for the run."""

    def __init__(self, *args: Any, spec: TimeoutSpec[Any, Any], store: TimeoutStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.store = store

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
        now = self.wf.clock.now()
        try:
            run = transitions.build_run(self.wf, record)
            expiries = [pair.timer(run, now) for pair in self.spec.pairs]
        except Exception as exc:  # noqa: BLE001 - a user timer failed: a step error
            return fail_step(self, record, exc)
        for expire_at in expiries:
            if expire_at is not None:
                self.store.create(self.wf.name, record.foreign_id, record.run_id, status, expire_at, created_at=now)
        return None


class TimeoutPoller(Process):
    """Fires expired timeouts of one status, by the timeout's own run."""

    def __init__(self, *args: Any, spec: TimeoutSpec[Any, Any], store: TimeoutStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.store = store

    def tick(self, budget: float) -> None:
        """Handle the expired timeouts, then wait for the next poll (or a clock change)."""
        if self.backing_off(budget):
            return
        clock = self.wf.clock
        now = clock.now()
        for timeout in self.store.list_valid(self.wf.name, int(self.spec.status), now):
            if not self.holding():
                return
            if not self._fire(timeout, now):
                # As the original: a failing timeout function backs the poller off for
                # err_backoff, then this timeout (still valid) is tried first again.
                self.back_off(self.options.err_backoff)
                return
        clock.wait_until(now + timedelta(seconds=self.options.polling_frequency), timeout=budget)

    def _fire(self, timeout: TimeoutRecord, now: Any) -> bool:
        """Fire (or drop) one expired timeout; False when the user's function failed."""
        try:
            record = self.wf.record_store.lookup(timeout.run_id)
        except RecordNotFound:
            self._cancel(timeout)
            return True
        except CorruptRecord as exc:
            self.metrics.malformed.inc()
            logger.error(
                "%s: run %s cannot be read; timeout %s dropped: %s", self.name, timeout.run_id, timeout.id, exc
            )
            self.store.complete(timeout.id)
            return True
        if record.status != timeout.status or record.run_state.finished:
            self._cancel(timeout)
            return True
        if record.run_state.stopped:
            return True  # paused: the timeout fires once the run is resumed
        for pair in self.spec.pairs:
            try:
                run = transitions.build_run(self.wf, record)
                write = transitions.result_record(self.wf, record, run, pair.fn(run, now), pair.destinations)
            except Exception as exc:  # noqa: BLE001 - a user timeout function failed
                logger.warning("%s/%s: timeout error for run %s: %s", self.wf.name, self.name, record.run_id, exc)
                self.metrics.error()
                with contextlib.suppress(VersionConflict):  # the run moved meanwhile
                    self.wf._step_failed(self.name, record, self.options.pause_after_err_count)  # noqa: SLF001
                return False  # the timeout stays valid and is tried again after the back-off
            if write is None:
                continue
            try:
                transitions.store(self.wf, write)
            except VersionConflict:
                return True  # the run moved meanwhile; the next poll sees where it is
            self.wf.error_counter.clear_errors(transitions.error_key(self.name, record), record.run_id)
            break
        else:
            self.metrics.skipped("next value specified skip")
        # Fired, or every function skipped: either way it must not fire again.
        self.store.complete(timeout.id)
        return True

    def _cancel(self, timeout: TimeoutRecord) -> None:
        with contextlib.suppress(TimeoutNotFound):
            self.store.cancel(timeout.id)
