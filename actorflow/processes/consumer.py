"""The event-consume loop every topic-reading process shares.

A tick pulls a batch of events, handles them in order, commits the writes of the batch
together (group commit), and only then acknowledges the last event handled. A handler
that asks to retry stops the batch at that event: the writes before it are committed and
acknowledged, and the event and those after it wait for the back-off, in order.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from actorflow.capabilities import FencedReceiver, InFlightLog, PartitionedReceiver
from actorflow.engine import Write
from actorflow.errors import CorruptRecord, RecordNotFound, StaleTerm
from actorflow.event import Event, Header, shard_of
from actorflow.log import logger
from actorflow.processes.base import Process
from actorflow.protocols import EventReceiver, ReceiverOptions
from actorflow.record import Record

if TYPE_CHECKING:
    from actorflow.engine import Engine
    from actorflow.metrics import ProcessMetrics
    from actorflow.options import ResolvedOptions

__all__ = ["EventConsumer", "Retry", "Skipped"]

BATCH_SIZE = 100


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """The event needs nothing done; ``reason`` is the skipped-events metric label."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """Handle the event again after ``delay`` seconds (it keeps its place in the stream)."""

    delay: float


Outcome = Write | Skipped | Retry | None


class EventConsumer(Process):
    """Reads one topic and hands each event to `handle`."""

    run_state_filter: int | None = None

    def __init__(
        self,
        engine: Engine[Any, Any],
        name: str,
        role: str,
        options: ResolvedOptions,
        metrics: ProcessMetrics,
        topic: str,
        shard: int = 0,
        shard_count: int = 1,
    ) -> None:
        super().__init__(engine, name, role, options, metrics)
        self.topic = topic
        self.shard = shard
        self.shard_count = shard_count
        self._receiver: EventReceiver | None = None
        self._pending: list[Event] = []
        self._lag_until: Any = None
        self._prefetched: dict[str, Record] = {}
        # Runs this role's previous holder was handling when it died (see InFlightLog).
        self._suspects: set[str] = set()
        self._refilter = True

    @abc.abstractmethod
    def handle(self, event: Event) -> Outcome:
        """What to do with one event (user errors are handled here, never raised)."""

    def start(self) -> None:
        """Open the receiver under the role's name (its durable cursor)."""
        options = ReceiverOptions(
            poll_frequency=self.options.polling_frequency,
            shard=self.shard,
            shard_count=self.shard_count,
        )
        log = self._in_flight_log()
        self._suspects = set(log.unfinished_batch(self.role)) if log is not None else set()
        receiver = self.engine.event_streamer.new_receiver(self.topic, self.role, options)
        # A partitioned receiver's share is its partitions, whoever placed the events there.
        self._refilter = not (isinstance(receiver, PartitionedReceiver) and receiver.partitioned())
        self._receiver = receiver

    def stop(self) -> None:
        """Close the receiver; events not yet acknowledged are delivered again."""
        self._pending = []
        self._lag_until = None
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.close()
            log = self._in_flight_log()
            if log is not None:
                try:
                    log.end_batches(self.role)  # an orderly stop: nothing of ours is in flight
                except Exception:  # noqa: BLE001 - the note only makes the next holder careful
                    logger.warning("%s: could not clear its in-flight note", self.name, exc_info=True)

    def _in_flight_log(self) -> InFlightLog | None:
        """The in-flight log, when this process pauses runs after errors (else no cost)."""
        return self.engine.capabilities.in_flight if self.options.pause_after_err_count > 0 else None

    def suspect_crash(self, record: Record) -> Write | None:
        """Count one error against a run the previous holder died handling; pause it at the limit.

        Returns the pause to store instead of running the step, or ``None`` to go on.
        """
        if record.run_id not in self._suspects:
            return None
        self._suspects.discard(record.run_id)
        return self.engine.fail(self.name, record, None, self.options.pause_after_err_count)

    def failed(self, record: Record, error: BaseException) -> Outcome:
        """A user function failed on ``record``: the automatic pause at the limit, else retry later."""
        self.metrics.error()
        pause = self.engine.fail(self.name, record, error, self.options.pause_after_err_count)
        return pause if pause is not None else Retry(self.options.err_backoff)

    def tick(self, budget: float) -> None:
        """Handle the next batch of events (or wait, if backing off or lagging)."""
        receiver = self._receiver
        if receiver is None or self.backing_off(budget):
            return
        if self._lag_until is not None:
            self.engine.clock.wait_until(self._lag_until, timeout=budget)
            if self.engine.clock.now() < self._lag_until:
                return
            self._lag_until = None
        if self._pending:
            events, self._pending = self._pending, []
        else:
            events = list(receiver.receive(BATCH_SIZE, budget))
        if events:
            self._handle_batch(receiver, events)

    def _handle_batch(self, receiver: EventReceiver, events: list[Event]) -> None:
        rest: list[Event] = []
        log = self._in_flight_log()
        if log is not None:
            if self._suspects and any(event.run_id in self._suspects for event in events):
                # After a node died: one event at a time, so only a run that kills the node
                # again is blamed again.
                events, rest = events[:1], events[1:]
            log.begin_batch(self.role, [event.run_id for event in events])
        batch_lookup = self.engine.capabilities.batch_lookup
        if batch_lookup is not None:
            # One round trip for the batch's records instead of one per event.
            self._prefetched = batch_lookup.lookup_many(event.run_id for event in events)
        try:
            self._handle_events(receiver, events)
        finally:
            self._prefetched = {}
            self._pending.extend(rest)

    def _handle_events(self, receiver: EventReceiver, events: list[Event]) -> None:
        writes: list[Write] = []
        done: Event | None = None
        lag = self.options.lag
        for index, event in enumerate(events):
            if not self.holding():
                # Nothing committed or acknowledged. Keep the batch: the receiver's position
                # is past it, so dropping it would let a later ack skip it if the lease is
                # renewed; if the role is lost instead, stop() drops it and the next holder
                # reads it again from the durable cursor.
                self._pending = events
                return
            now = self.engine.clock.now()
            if lag and event.created_at + timedelta(seconds=lag) > now:
                self._pending = events[index:]
                self._lag_until = event.created_at + timedelta(seconds=lag)
                break
            self.observe_lag((now - event.created_at).total_seconds())
            started = time.perf_counter()
            self.in_hand = f"handling event {event.id} of run {event.run_id} on {self.topic}"
            try:
                outcome = self._filter(event) or self.handle(event)
            finally:
                self.in_hand = None
            self.metrics.latency.observe(time.perf_counter() - started)
            if isinstance(outcome, Retry):
                self._pending = events[index:]
                self.back_off(outcome.delay)
                break
            if isinstance(outcome, Write):
                writes.append(outcome)
            elif isinstance(outcome, Skipped):
                self.metrics.skipped(outcome.reason)
            done = event
        if writes:
            if not self.holding():
                self._pending = events  # as above: redo the whole batch if the lease comes back
                return
            try:
                results = self.engine.writer.commit(writes, fence=self.fence)
            except StaleTerm:
                # Nothing stored or acknowledged: the new holder redoes the batch.
                self.fenced_out([write.record.run_id for write in writes])
                return
            for write, error in zip(writes, results, strict=True):
                if error is not None:
                    # Someone else moved the run since we read it; their event follows. The
                    # step's work is lost: say so, a fleet's duplicate work must be seen.
                    self.metrics.skipped("record version conflict")
                    logger.warning(
                        "%s/%s on node %s: run %s moved on before this step's result was stored "
                        "(version %d refused): the other write stands, this one is dropped",
                        self.engine.name,
                        self.name,
                        self.node_id,
                        write.record.run_id,
                        write.record.meta.version,
                    )
        if done is not None:
            if not self.holding():
                self._pending = events  # the lease was lost while handling (a fenced write): as above
                return
            self._ack(receiver, done)

    def _ack(self, receiver: EventReceiver, event: Event) -> None:
        """Acknowledge up to ``event``; under the role's lease when the streamer can check it (fencing)."""
        fence = self.fence
        if fence is None or not self.engine.capabilities.fenced_acks or not isinstance(receiver, FencedReceiver):
            receiver.ack(event)
            return
        try:
            receiver.ack_fenced(event, fence)
        except StaleTerm:
            # The role moved on: the cursor stays where the new holder has it, and it
            # reads these events again (what needed doing was committed, or needs nothing).
            self.fenced_out([event.run_id])

    def _filter(self, event: Event) -> Skipped | None:
        if event.malformed:
            self.metrics.malformed.inc()
            logger.error("%s: malformed event %s on %s skipped: %s", self.name, event.id, self.topic, event.malformed)
            return Skipped("malformed event")
        if self.shard_count > 1 and self._refilter and shard_of(event.run_id, self.shard_count) != self.shard:
            return Skipped("filtered out")
        if self.run_state_filter is not None:
            state = event.headers.get(Header.RUN_STATE)
            if state != str(self.run_state_filter):
                return Skipped("filtered out")
        return None

    # -- helpers for handlers ------------------------------------------------------------

    def event_version(self, event: Event) -> int | None:
        """The event's ``record_version`` header; ``None`` when absent or malformed."""
        raw = event.headers.get(Header.RECORD_VERSION)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return None

    def lookup(self, event: Event) -> Record | Skipped:
        """The event's record, or why the event is skipped (gone, or unreadable)."""
        found = self._prefetched.pop(event.run_id, None)
        if found is not None:
            return found
        try:
            return self.engine.record_store.lookup(event.run_id)
        except RecordNotFound:
            return Skipped("record not found")
        except CorruptRecord as exc:
            self.metrics.malformed.inc()
            logger.error("%s: run %s cannot be read, event skipped: %s", self.name, event.run_id, exc)
            return Skipped("corrupt record")

    def load(self, event: Event, status: int | None) -> Record | Skipped | Retry:
        """The event's record if the event is current and the run may move, else why not.

        Skips events of runs that are gone, older than the record (already handled), for
        another status, or of a stopped run; retries when the record is older than the
        event (a stale read: the store has not caught up yet).
        """
        record = self.lookup(event)
        if isinstance(record, Skipped):
            return record
        version = self.event_version(event)
        if version is None:
            if Header.RECORD_VERSION in event.headers:
                self.metrics.malformed.inc()
                logger.warning("%s: malformed record_version on event %s; skipped", self.name, event.id)
                return Skipped("malformed event")
            # Legacy event without a version: it is current if the record is where it says.
            version = record.meta.version if record.status == event.type else 0
        if record.meta.version > version:
            return Skipped("event record version lower than latest record version")
        if record.meta.version < version:
            return Retry(self.options.err_backoff)
        if status is not None and record.status != status:
            return Skipped("record status not in expected state")
        if record.run_state.stopped:
            return Skipped("record stopped")
        return record
