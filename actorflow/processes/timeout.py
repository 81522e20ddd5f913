"""Timeouts: an inserter that sets a run's timers, and a poller that fires them.

The inserter reads the status topic and stores a timeout per timer when a run reaches
the status, naming the timer (its index among the status's timeouts) and the visit (the
run's version); the poller runs, for each that expired, its own timeout function, and
only while the run is still on that visit. Timeouts stored without them (older
releases, or a store that cannot keep them) try every function of the status, in order.
"""

from __future__ import annotations

import functools
import inspect
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from actorflow.capabilities import FencedTimeouts
from actorflow.engine import Failed
from actorflow.errors import CorruptRecord, RecordNotFound, StaleTerm, TimeoutNotFound
from actorflow.event import Event
from actorflow.processes.base import Process
from actorflow.processes.consumer import EventConsumer, Outcome
from actorflow.record import Record, Run

if TYPE_CHECKING:
    from collections.abc import Callable

    from actorflow.protocols import TimeoutRecord, TimeoutStore
    from actorflow.specs import TimeoutPair, TimeoutSpec

__all__ = ["TimeoutInserter", "TimeoutPoller"]


def _fenced(process: Process, store: TimeoutStore) -> FencedTimeouts | None:
    """``store`` when it can check ``process``'s lease in its own transactions (fencing), else None."""
    if isinstance(store, FencedTimeouts) and store.fences_with(process.engine.role_scheduler):
        return store
    return None


def _keeps_visits(store: TimeoutStore) -> bool:
    """True when ``store.create`` takes ``index`` and ``record_version`` (a store written before them does not)."""
    try:
        parameters = inspect.signature(store.create).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a create without a signature: assume the contract
        return True
    names = {p.name for p in parameters}
    return {"index", "record_version"} <= names or any(p.kind is p.VAR_KEYWORD for p in parameters)


class TimeoutInserter(EventConsumer):
    """Reads the status topic; for each timer of the status, stores a timeout for the run."""

    def __init__(self, *args: Any, spec: TimeoutSpec[Any, Any], store: TimeoutStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.store = store
        self._fenced = _fenced(self, store)
        self._keeps_visits = _keeps_visits(store)
        if not self._keeps_visits:
            self.log.warning(
                "%s: the timeout store %s keeps no timeout index or record version: every timeout of the status "
                "runs its functions when one expires, and on any later visit (upgrade the store)",
                self.name,
                type(store).__name__,
            )

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
        run = self.engine.run_of(record)
        if isinstance(run, Failed):  # the stored object cannot be read: reported and paused at once, as a step's
            return self.failed(record, run.error)
        try:
            expiries = [pair.timer(run, now) for pair in self.spec.pairs]
        except Exception as exc:  # noqa: BLE001 - a user timer failed: a step error
            return self.failed(record, exc)
        args = (self.engine.name, record.foreign_id, record.run_id, status)
        create: Callable[..., int] = self.store.create
        if self._fenced is not None and self.fence is not None:
            create = functools.partial(self._fenced.create, fence=self.fence)
        for index, expire_at in enumerate(expiries):
            if expire_at is None:
                continue
            # Which timer, and the visit: only its own function fires, and only on this visit.
            visit = {"index": index, "record_version": record.meta.version} if self._keeps_visits else {}
            try:
                create(*args, expire_at, created_at=now, **visit)
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
            self.metrics.corrupt.inc()  # a stored run that cannot be read (alert ActorflowCorruptRecords)
            self.log.error(  # noqa: TRY400 - a corrupt row: its message says all
                "%s: run %s cannot be read; timeout %s dropped: %s",
                self.name,
                timeout.run_id,
                timeout.id,
                exc,
                extra={"run_id": timeout.run_id, "foreign_id": timeout.foreign_id},
            )
            self._complete(timeout)
            return True
        if record.status != timeout.status and not record.run_state.finished:
            corrupt = self.engine.unknown_status(record)
            if corrupt is not None:
                self._pause_corrupt(record, corrupt)
                return True  # kept, as for a paused run: it fires if the row is mended and the run resumed
        if record.status != timeout.status or record.run_state.finished:
            self._cancel(timeout)
            return True
        if record.run_state.stopped:
            return True  # paused: the timeout fires once the run is resumed
        if timeout.record_version is not None and record.meta.version < timeout.record_version:
            return True  # a read behind the visit that set it (the store catching up): the next poll sees it
        if not self._on_its_visit(timeout, record):
            self._skip(timeout, "timeout of an earlier visit")
            return True
        pairs = self._pairs(timeout)
        if pairs is None:
            self._skip(timeout, "timeout function not found")
            return True
        writer = self.engine.writer
        for pair in pairs:

            def call(run: Run[Any, Any], fn: Callable[[Run[Any, Any], datetime], Any] = pair.fn) -> Any:
                return fn(run, now)

            result = self.engine.apply(record, call, pair.destinations, kind="timeout")
            if isinstance(result, Failed):
                self.metrics.error()
                self.engine.fail_now(
                    self.name, record, result.error, self.options.pause_after_err_count, fence=self.fence
                )
                return False  # the timeout stays valid and is tried again after the back-off
            if result is None:
                continue
            if writer.commit((result,), fence=self.fence)[0] is not None:
                # Someone else moved the run since we read it (another node firing this
                # timeout, a pause...): a lost race. The timeout stays; the next poll
                # finds where the run is (moved on: dropped; paused: it waits).
                self.metrics.skipped("record version conflict")
                self.log.warning(
                    "%s on node %s: run %s moved on before timeout %s's result was stored (version %d refused)",
                    self.name,
                    self.node_id,
                    record.run_id,
                    timeout.id,
                    result.record.meta.version,
                )
                return True
            break
        else:
            self.metrics.skipped("next value specified skip")
        # Fired, or every function skipped: either way it must not fire again.
        self._complete(timeout)
        return True

    def _pause_corrupt(self, record: Record, corrupt: CorruptRecord) -> None:
        """Report and pause ``record``, whose stored status is not the workflow's (once: a paused run is left)."""
        if not record.run_state.stopped:
            self.engine.fail_now(self.name, record, corrupt, self.options.pause_after_err_count, fence=self.fence)

    def _on_its_visit(self, timeout: TimeoutRecord, record: Record) -> bool:
        """True while ``record`` is on the visit that set ``timeout`` (always, for a timeout without one).

        The visit goes on through writes that keep the status (a pause and its resume move
        the version, not the run); it ended if any version since the timeout's left the
        status. Only when the run moved is its history read; a gap in it counts as ended
        (the later visit has timeouts of its own).
        """
        since = timeout.record_version
        if since is None or record.meta.version == since:
            return True
        later = [r for r in self.engine.history(record.run_id) if since < r.meta.version <= record.meta.version]
        if [r.meta.version for r in later] != list(range(since + 1, record.meta.version + 1)):
            return False
        return all(r.status == timeout.status for r in later)

    def _pairs(self, timeout: TimeoutRecord) -> list[TimeoutPair[Any, Any]] | None:
        """The timeout functions ``timeout`` runs: its own, or all of the status for one without an index.

        ``None`` when the status has no timeout at that index (the workflow lost timeouts since).
        """
        if timeout.index is None:
            return self.spec.pairs
        if timeout.index >= len(self.spec.pairs):
            return None
        return [self.spec.pairs[timeout.index]]

    def _skip(self, timeout: TimeoutRecord, reason: str) -> None:
        """Complete ``timeout`` without firing it, counted as a skipped event (``reason``) and logged."""
        self.metrics.skipped(reason)
        self.log.info(
            "%s: timeout %s (index %s, set at version %s) of run %s completed unfired: %s",
            self.name,
            timeout.id,
            timeout.index,
            timeout.record_version,
            timeout.run_id,
            reason,
        )
        self._complete(timeout)

    def _complete(self, timeout: TimeoutRecord) -> None:
        """Mark ``timeout`` done, under the role's lease when the store can check it (`StaleTerm` if lost)."""
        fenced = self._fenced
        self._end(timeout, self.store.complete, fenced.complete if fenced is not None else None)

    def _cancel(self, timeout: TimeoutRecord) -> None:
        """Remove ``timeout`` (its run moved on), under the role's lease when the store can check it."""
        fenced = self._fenced
        self._end(timeout, self.store.cancel, fenced.cancel if fenced is not None else None)

    def _end(
        self,
        timeout: TimeoutRecord,
        plain: Callable[[int], None],
        fenced: Callable[..., None] | None,
    ) -> None:
        """Complete or cancel ``timeout`` through ``fenced`` when there is a lease to check, else ``plain``."""
        try:
            if fenced is not None and self.fence is not None:
                fenced(timeout.id, fence=self.fence)
            else:
                plain(timeout.id)
        except TimeoutNotFound:
            self._lost_race(timeout)

    def _lost_race(self, timeout: TimeoutRecord) -> None:
        """Another writer (a node that held the role before) completed or removed ``timeout`` first: a skip."""
        self.metrics.skipped("timeout not found")
        self.log.info(
            "%s: timeout %s of run %s was already completed or removed",
            self.name,
            timeout.id,
            timeout.run_id,
            extra={"run_id": timeout.run_id, "foreign_id": timeout.foreign_id},
        )
