"""The event-consume loop every topic-reading process shares.

Events are handled in stream order, and each run's events one after another; events of
different runs may overlap. Events handed over by this engine's own writer (a step
consumer's, when the store cannot publish events itself: engine/handoff.py) are taken
before what the receiver holds, so they may overtake another run's event; a run's own
events keep their order. A handler returns the write its event asks for (or a skip, a
retry); a handler with slow work (a user's step) returns it as `Work`, which runs on the
consumer's own thread while steps are quick, and on up to ``max_in_flight`` worker threads
beside each other once they take longer (steps that wait on I/O). Writes are committed
together (group commit: when nothing else is in hand, ``batch_size`` writes are waiting, or
the oldest has waited ``commit_interval``), and the cursor is acknowledged only past
events whose effects are committed: a crash re-runs at most the events in hand. A retry
holds its own run (that run's later events wait behind it), not the others.
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import functools
import heapq
import itertools
import queue
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from actorflow.capabilities import (
    CursorMove,
    CursorMoves,
    FencedReceiver,
    InFlightLog,
    InterruptibleReceiver,
    PartitionedReceiver,
    QuietReceiver,
    RecordsAlong,
    WakeableReceiver,
)
from actorflow.engine import HANDED_EVENT_ID, Write
from actorflow.errors import CorruptRecord, RecordNotFound, StaleTerm
from actorflow.event import Event, Header, shard_of
from actorflow.processes._workers import Workers
from actorflow.processes.base import Process
from actorflow.protocols import EventReceiver, ReceiverOptions
from actorflow.record import Record

if TYPE_CHECKING:
    from actorflow.engine import Engine
    from actorflow.metrics import ProcessMetrics
    from actorflow.options import ResolvedOptions

__all__ = ["BATCH_SIZE", "EventConsumer", "Retry", "Skipped", "Work"]

BATCH_SIZE = 100  # the default batch_size: events read, and writes committed, at a time

# How long, on average, a `Work` takes before it goes to the worker threads. Quicker work
# runs on the consumer's thread: handing it to a thread would cost more than it takes.
INLINE_BELOW = 0.002
# With work in hand, the receiver is asked for more at most this often (it is asked at
# once, and waited on, when nothing is in hand).
_POLL_WHILE_BUSY = 0.005
# Events held in memory past the oldest unfinished one (a run retried again and again
# holds the cursor, not the others); past this the consumer reads no more until it ends.
WINDOW_LIMIT = 10_000
_FREE: Any = object()  # `_behind.get` default: the run has no event in hand
# How long stopping waits for the steps running on workers (a step that hangs is abandoned:
# its event is not acknowledged, and the role's next holder handles it again). Under the
# supervisor's default stop grace (4.5 s), so an orderly stop stores what finished in time.
DRAIN_LIMIT = 3.0
# How long an event may stay ahead of its run's record (a stale read: the store has not
# caught up) before it is skipped as malformed. Every adapter commits a record before its
# event can be read, so only a hostile or corrupt event (a record_version from the future)
# stays ahead for long: retried for ever, it would hold its run and, past WINDOW_LIMIT, the shard.
STALE_READ_LIMIT = 60.0
# Events handed over by this engine's writer (see engine/handoff.py) waiting to be taken in;
# past this many more are dropped (the streamer's copies bring them).
HANDED_LIMIT = 1_000
# With the handoff on, runs whose event is done here (its write committed, or nothing to do),
# by the version it was at: the event's twin (handed or from the streamer, whichever comes
# second) is then dropped unread, so a step never runs twice for one event. The oldest are
# forgotten past this many.
_HANDED_DONE_LIMIT = 100_000


def _handed_key(event: Event) -> tuple[str, str | None]:
    """An event's key in ``_handed_pending``: its run and the version its header names (both copies have it)."""
    return event.run_id, event.headers.get(Header.RECORD_VERSION)


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """The event needs nothing done; ``reason`` is the skipped-events metric label."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """Handle the event again after ``delay`` seconds (its run's later events wait behind it).

    ``stale``: the event is ahead of its record; such retries end after `STALE_READ_LIMIT`.
    """

    delay: float
    stale: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Work:
    """The slow part of handling an event (a user's step): ``run`` may go to a worker thread.

    ``run`` must not touch the stores (it may run on any thread, beside other events'
    work); ``then`` gets its result on the consumer's thread and returns the outcome.
    """

    run: Callable[[], Any]
    then: Callable[[Any], Outcome]
    awaitable: bool = False
    """``run()`` returns a coroutine (an ``async def`` step): it runs on the engine's loop, in the same window."""


Outcome = Write | Skipped | Retry | Work | None
# Runs whose last log event done is remembered with the handoff on (see EventConsumer._log_done):
# a handed copy comes right after its commit, so a few thousand cover far more than that gap.
LOG_DONE_LIMIT = 4_096
# The second copy of an event done here (handed, or from the streamer): not counted as skipped.
_COPY = Skipped("copy of a handed event")


class _Slot:
    """One received event on its way through the consumer."""

    __slots__ = ("done", "event", "handed", "stale_since", "started")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.handed = event.id == HANDED_EVENT_ID  # from this engine's writer: never acknowledged
        self.done = False  # its effect is committed, or it needed none: the cursor may pass it
        self.started = 0.0
        self.stale_since: float | None = None  # when it was first found ahead of its record


class EventConsumer(Process):
    """Reads one topic and hands each event to `handle`."""

    run_state_filter: int | None = None
    # Whether this process takes its engine's own events from the writer (`Handoff`) when
    # the store cannot publish them itself and the receiver can be woken.
    takes_handoff = False

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
        self._lag_until: Any = None
        self._prefetched: dict[str, Record] = {}
        # Runs this role's previous holder was handling when it died (see InFlightLog): each
        # is met alone, under a note of its own. The culprit (the one run of a note of one)
        # surely killed the node: it alone gets an error counted.
        self._suspects: set[str] = set()
        self._culprit: str | None = None
        self._noted = False  # the in-flight note may name runs (cleared once idle)
        self._refilter = True
        self._handling: _Slot | None = None  # the event being handled on this thread (see in_hand)
        self._fresh: dict[str, Record] = {}
        self._moves: CursorMoves | None = None
        self._fenced_receiver: FencedReceiver | None = None
        self._records_along: RecordsAlong | None = None
        self._workers: Workers | None = None
        self._work_time = 0.0  # moving average of a Work's duration: quick work runs on this thread
        self._generation = 0  # bumped by each reset: work finishing after it is dropped
        # Appended by committing threads, taken here: each with its record, exactly as committed.
        self._handed_in: deque[tuple[Event, Record]] = deque()
        # (run id, record_version header) of each handed event not finished yet: a streamer
        # copy of one that is done first makes the handed one its twin to drop.
        self._handed_pending: dict[tuple[str, str | None], None] = {}
        self._handed_done: dict[str, int] = {}  # run id -> version of its event done here, twin to come
        self._log_ahead = True  # the last read was a full batch of events not handed over (see `_receive`)
        # With the handoff on: run id -> version of its event last done from the log, for the
        # latest LOG_DONE_LIMIT runs. The log's copy can be read (the server committed) and done
        # before the writer hands the event over: the handed one is then dropped (`_take_handed`).
        self._log_done: dict[str, int] = {}
        self._handoff_token: object | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget every event in hand (not acknowledged: the receiver delivers them again)."""
        self._window: deque[_Slot] = deque()  # received, not acknowledged, in stream order
        self._ready: deque[_Slot] = deque()  # to handle now, in stream order
        # A run with an event in hand -> its events waiting behind it (None: none yet).
        self._behind: dict[str, deque[_Slot] | None] = {}
        self._retries: list[tuple[float, int, _Slot]] = []  # (due, order, slot): a heap
        self._staged: list[tuple[_Slot, Write]] = []  # handled: their writes wait for the commit
        self._staged_at = 0.0
        self._unread: deque[Event] = deque()  # received, let in a suspect at a time (after a node died)
        self._alone: str | None = None  # the suspect let in alone: nothing else is let in beside it
        # Records read with the events (RecordsAlong), for the first slot in hand of each run.
        self._along: dict[str, Record] = {}
        self._running: dict[_Slot, Work] = {}
        self._finished: queue.SimpleQueue[tuple[int, _Slot, Any, BaseException | None]] = queue.SimpleQueue()
        self._next_poll = 0.0
        self._order = itertools.count()
        self._generation += 1

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
        noted = log.unfinished_batch(self.role) if log is not None else []
        self._suspects = set(noted)
        # Several runs in the note: any of them may have killed the node, so none is blamed
        # yet. One run alone in it: that run did.
        self._culprit = noted[0] if len(noted) == 1 else None
        self._noted = bool(noted)
        receiver = self.engine.event_streamer.new_receiver(self.topic, self.role, options)
        # A partitioned receiver's share is its partitions, whoever placed the events there.
        self._refilter = not (isinstance(receiver, PartitionedReceiver) and receiver.partitioned())
        # Checked once: a runtime protocol check costs tens of microseconds, too much per commit.
        shared = self.engine.capabilities.commit_acks  # the store is in the streamer's database
        self._moves = receiver if shared and isinstance(receiver, CursorMoves) else None
        self._fenced_receiver = receiver if isinstance(receiver, FencedReceiver) else None
        self._records_along = receiver if shared and isinstance(receiver, RecordsAlong) else None
        if self._records_along is not None:
            self._records_along.read_records_along()
        self._receiver = receiver
        if self._handoff_token is not None:  # started again without a stop (the actor crashed)
            self.engine.handoff.unsubscribe(self._handoff_token)
            self._handoff_token = None
        self._forget_handed()
        handoff = self.takes_handoff and self.engine.capabilities.hands_off
        if handoff and isinstance(receiver, WakeableReceiver):
            self._handoff_token = self.engine.handoff.subscribe(
                self.topic, self.shard, self.shard_count, functools.partial(self._hand, receiver)
            )

    def _forget_handed(self) -> None:
        """Drop what the handoff left (a stop, or a start after one: a late hand may have come between)."""
        self._handed_in.clear()
        self._handed_pending.clear()
        self._handed_done.clear()
        self._log_done.clear()

    def _hand(self, receiver: WakeableReceiver, handed: list[tuple[Event, Record]]) -> None:
        """Events of this engine's own commit, with their records (on the committing thread): take them in soon."""
        room = HANDED_LIMIT - len(self._handed_in)
        if room <= 0:
            return
        pending, handed_in = self._handed_pending, self._handed_in
        for event, record in handed[:room]:
            pending[_handed_key(event)] = None
            handed_in.append((event, record))
        receiver.wake()

    def wake(self) -> None:
        """Cut the tick in progress short, its receiver's wait too (when it can be interrupted)."""
        super().wake()
        receiver = self._receiver
        if isinstance(receiver, InterruptibleReceiver):
            receiver.interrupt()

    def stop(self) -> None:
        """Finish the work in hand while the lease lasts, then close the receiver.

        Events not acknowledged are delivered again to the role's next holder.
        """
        receiver, self._receiver = self._receiver, None
        token, self._handoff_token = self._handoff_token, None
        if token is not None:
            self.engine.handoff.unsubscribe(token)
        try:
            if receiver is not None and self._running and self.holding():
                self._drain(receiver)
            if receiver is not None and self._handed_done:
                self._pass_twins(receiver)
        finally:
            # Even when the drain failed (the store is down): no thread or receiver is left.
            self._forget_handed()
            self._reset()
            self._lag_until = None
            workers, self._workers = self._workers, None
            if workers is not None:
                workers.close()
            if receiver is not None:
                receiver.close()
        if receiver is not None:
            log = self._in_flight_log()
            if log is not None:
                try:
                    log.end_batches(self.role)  # an orderly stop: nothing of ours is in flight
                    self._noted = False
                except Exception:
                    self.log.warning("%s: could not clear its in-flight note", self.name, exc_info=True)

    def _drain(self, receiver: EventReceiver) -> None:
        """Wait (while the lease lasts) for the steps running, and commit what they return."""
        give_up = time.monotonic() + DRAIN_LIMIT
        while self._running and self.holding() and time.monotonic() < give_up:
            until = give_up if self.valid_until is None else min(give_up, self.valid_until)
            self._take_finished(max(0.0, min(until - time.monotonic(), 1.0)))
        if self._staged and self.holding():
            self._commit(receiver)

    def _pass_twins(self, receiver: EventReceiver) -> None:
        """Before the role goes, move the cursor past the log's copies of events done here from the writer.

        A handed event is never acknowledged; its twin is, once read. Left unread, the
        role's next holder would meet it again and run again a step that wrote nothing
        (a skip). Only while nothing else is in hand, and up to the first event that is
        not such a twin (that one is the next holder's).
        """
        if not isinstance(receiver, QuietReceiver):
            return
        self._acknowledge(receiver)  # the done slots at the window's head first
        if self._window or not self.holding():
            return
        give_up = time.monotonic() + DRAIN_LIMIT
        while self._handed_done and self.holding() and time.monotonic() < give_up:
            receiver.look_again()
            events = list(receiver.receive(self.options.batch_size, 0.0))
            last: Event | None = None
            for event in events:
                if not self._already_handed(event, forget=True):
                    break
                last = event
            if last is not None:
                self._ack(receiver, last)
            if last is None or last is not events[-1]:
                return

    def _in_flight_log(self) -> InFlightLog | None:
        """The in-flight log, when this process pauses runs after errors (else no cost)."""
        return self.engine.capabilities.in_flight if self.options.pause_after_err_count > 0 else None

    def suspect_crash(self, record: Record) -> Write | None:
        """Count one error against the run that killed the previous holder; pause it at the limit.

        Only the culprit (the one run of the note the previous holder left) is counted
        against; the other suspects (runs of a note of several) are met alone, so the next
        holder knows which one it was if it dies again. Returns the pause to store instead
        of running the step, or ``None`` to go on.
        """
        run_id = record.run_id
        if run_id not in self._suspects:
            return None
        self._suspects.discard(run_id)
        if run_id != self._culprit:
            return None
        self._culprit = None
        return self.engine.fail(self.name, record, None, self.options.pause_after_err_count)

    def failed(self, record: Record, error: BaseException) -> Outcome:
        """A user function failed on ``record``: the automatic pause at the limit, else retry later."""
        self.metrics.error()
        pause = self.engine.fail(self.name, record, error, self.options.pause_after_err_count)
        return pause if pause is not None else Retry(self.options.err_backoff)

    # -- the loop -------------------------------------------------------------------------

    def tick(self, budget: float) -> None:
        """Move events along for up to ``budget`` seconds: read, handle, commit, acknowledge."""
        receiver = self._receiver
        if receiver is None:
            return
        deadline = time.monotonic() + budget
        self.engine.writer.settle()  # a commit that failed may have been applied: find out
        while self._receiver is receiver:
            self._take_finished(0.0)
            self._due_retries()
            if not self.holding():
                return  # the actor sees the lease gone and stops the process
            self._dispatch()
            if self._commit_due():
                self._commit(receiver)
            elif not self._staged:
                self._acknowledge(receiver)
            now = time.monotonic()
            if now >= deadline or not self.holding():
                return
            if self._wants_events(now):
                busy = bool(self._running or self._staged or self._ready)
                # Idle but for retries: the receiver waits until the first falls due.
                until = min(deadline, self._retries[0][0]) if self._retries else deadline
                if self._handoff_token is not None:  # idle: the writer may hand events over instead of waking
                    idle = not (busy or self._log_ahead or self._suspects or self._unread)
                    self.engine.handoff.set_idle(self._handoff_token, idle=idle)
                events = self._next_events(receiver, 0.0 if busy else max(0.0, until - now))
                self._next_poll = time.monotonic() + _POLL_WHILE_BUSY
                if events:
                    self._accept(events)
                    continue
                if not busy:
                    if self.woken():
                        return  # the node stops: the actor takes its stop message now
                    continue  # the receiver waited until the tick's end or a retry's time
            if self._lag_until is not None and not self._running:
                self._wait_for_lag(deadline)
                if self.woken():
                    return
                continue
            self._take_finished(max(0.0, self._wake_at(deadline) - time.monotonic()))

    def _wants_events(self, now: float) -> bool:
        """Whether to ask the receiver for more now."""
        if not self.holding() or len(self._window) >= WINDOW_LIMIT:
            return False
        if self._alone is not None:
            if self._alone in self._behind:
                return False  # a suspect's event in hand: it runs with nothing beside it
            self._alone = None
        if self._unread and self._unread[0].run_id in self._suspects:
            # After a node died: a suspect's event only once nothing else is in hand.
            return not self._window
        if len(self._ready) >= max(1, self.options.max_in_flight) or self._lag_until is not None:
            return False
        return not (self._running or self._staged or self._ready) or now >= self._next_poll

    def _wait_for_lag(self, deadline: float) -> None:
        """Nothing running: wait on the workflow's clock until the first ready event is old enough."""
        until = self._retries[0][0] if self._retries else deadline
        clock = self.engine.clock
        clock.wait_until(self._lag_until, timeout=max(0.0, min(deadline, until) - time.monotonic()))
        if clock.now() >= self._lag_until:
            self._lag_until = None

    def _wake_at(self, deadline: float) -> float:
        """When to look again if no work finishes first: a commit, a retry, a poll or the lag falling due."""
        now = time.monotonic()
        wake = deadline
        if self._staged:
            wake = min(wake, self._staged_at + self.options.commit_interval)
        if self._retries:
            wake = min(wake, self._retries[0][0])
        if self._lag_until is not None:
            wake = min(wake, now + max(0.0, (self._lag_until - self.engine.clock.now()).total_seconds()))
        if self._wants_events(now):
            wake = min(wake, self._next_poll)
        return wake

    def _next_events(self, receiver: EventReceiver, wait: float) -> list[Event]:
        if self._handed_in:
            handed = self._take_handed()
            if handed:
                return handed
        if not self._unread:
            events = self._receive(receiver, wait)
            suspects = self._suspects
            if not (suspects and any(event.run_id in suspects for event in events)):
                return events
            self._unread.extend(events)
        return self._let_in()

    def _receive(self, receiver: EventReceiver, wait: float) -> list[Event]:
        """The receiver's next events; about to wait with nothing in hand, the in-flight note is cleared first.

        A note left once its runs are done would blame them for a crash they had no part in
        (a single run's note convicts it). Cleared only when the receiver has nothing at
        once: a busy consumer still writes one note per batch.
        """
        size = self.options.batch_size
        events: list[Event] = []
        if wait > 0 and self._noted and not self._window:
            events = list(receiver.receive(size, 0.0))
            log = self._in_flight_log()
            if not events and log is not None:
                log.end_batches(self.role)
                self._noted = False
        if not events:
            events = list(receiver.receive(size, wait))
        if self._records_along is not None:
            self._fresh = self._records_along.records()
        if self._handoff_token is not None:
            # A full batch of events the writer did not hand over: the shard is behind (a
            # backlog, read in batches), and handing over saves nothing. A shorter read
            # drained the log (a hop notified while this consumer was busy, another node's
            # write): the consumer goes idle again, else every later hop would be read back.
            self._log_ahead = len(events) >= size and any(not self._twin(event) for event in events)
        return events

    def _twin(self, event: Event) -> bool:
        """True for the streamer's copy of an event handed over (done, or still in hand)."""
        if _handed_key(event) in self._handed_pending:
            return True
        return bool(self._handed_done) and self._already_handed(event)

    def _take_handed(self) -> list[Event]:
        """Events handed over by this engine's writer, up to a batch.

        Not while a previous holder's suspects are being met one at a time (the streamer's
        copies come through that path instead).
        """
        handed = self._handed_in
        if self._suspects or self._unread:
            handed.clear()
            self._handed_pending.clear()
            return []
        events: list[Event] = []
        # The committed record comes with each: it is what a read would find (a store keeps
        # a record exactly as written; a later write of the run fails its version check).
        fresh = self._fresh = {}
        log_done = self._log_done
        while handed and len(events) < self.options.batch_size:
            event, record = handed.popleft()
            if log_done and log_done.get(event.run_id, 0) >= record.meta.version:
                # Its copy in the log was read and done first: this one is the twin.
                self._handed_pending.pop(_handed_key(event), None)
                continue
            events.append(event)
            fresh[event.run_id] = record
        return events

    def _already_handed(self, event: Event, *, forget: bool = False) -> bool:
        """True for the twin of an event done here (see `_handled_here`): it is dropped.

        ``forget``: the twin is being dropped now, so the run's entry goes.
        """
        handled = self._handed_done.get(event.run_id)
        if handled is None:
            return False
        version = self.event_version(event)
        if version is None or version > handled:
            return False
        if forget and version == handled:
            del self._handed_done[event.run_id]
        return True

    def _let_in(self) -> list[Event]:
        """After a node died: a suspect's event alone (nothing else in hand), the others in batches.

        A suspect that kills the node again then leaves a note naming it alone.
        """
        unread, suspects = self._unread, self._suspects
        if unread[0].run_id in suspects:
            if self._window:
                return []  # `_wants_events` waits for this; kept for safety
            self._alone = unread[0].run_id
            return [unread.popleft()]
        events: list[Event] = []
        while unread and unread[0].run_id not in suspects and len(events) < self.options.batch_size:
            events.append(unread.popleft())
        return events

    def _accept(self, events: list[Event]) -> None:
        """Take received events in: each is ready, or waits behind its run's event in hand."""
        if self._handoff_token is not None:
            self.engine.handoff.set_idle(self._handoff_token, idle=False)
        behind = self._behind
        fresh, self._fresh = self._fresh, {}
        for event in events:
            slot = _Slot(event)
            self._window.append(slot)
            run_id = event.run_id
            waiting = behind.get(run_id, _FREE)
            if waiting is _FREE:
                behind[run_id] = None  # in hand, nothing behind it yet
                self._ready.append(slot)
                record = fresh.get(run_id)
                if record is not None:  # read with the event: good for this slot (not for later ones)
                    self._along[run_id] = record
            elif waiting is None:
                behind[run_id] = deque((slot,))
            else:
                waiting.append(slot)
        log = self._in_flight_log()
        if log is not None:
            # Noted before any of them runs: the runs in hand, which a crash would leave unfinished.
            log.begin_batch(self.role, list(behind))
            self._noted = True

    def _dispatch(self) -> None:
        """Handle ready events in order while there is room; quick work runs here, slow work on workers."""
        self._lag_until = None  # set again below while the first ready event is too young
        ready = self._ready
        limit = max(1, self.options.max_in_flight)
        if not ready or len(self._running) >= limit:
            return
        # The records of the events about to be handled: read with them, else one round trip
        # for all (not one each): all of them while work runs here, as many as there is room
        # for on the workers.
        room = len(ready) if limit == 1 or self._work_time < INLINE_BELOW else limit - len(self._running)
        wanted = {
            slot.event.run_id
            for slot in itertools.islice(ready, room)
            if not slot.event.malformed and not (self._handed_done and self._already_handed(slot.event))
        }
        along = self._along
        found = {run_id: along.pop(run_id) for run_id in wanted if run_id in along}
        batch_lookup = self.engine.capabilities.batch_lookup
        if batch_lookup is not None and len(found) < len(wanted):
            found.update(batch_lookup.lookup_many(wanted.difference(found)))
        self._prefetched = found
        lag = self.options.lag
        now = self.engine.clock.now()  # once for the events handled now: they are handled within a tick
        lagged = False
        try:
            while ready and len(self._running) < limit:
                if not self.holding():
                    return
                slot = ready[0]
                event = slot.event
                if lag and event.created_at + timedelta(seconds=lag) > now:
                    self._lag_until = event.created_at + timedelta(seconds=lag)
                    return
                ready.popleft()
                if not lagged:  # the oldest event handled now: the gauge's value for this round
                    lagged = True
                    self.observe_lag((now - event.created_at).total_seconds())
                slot.started = time.perf_counter()
                self._handling = slot
                try:
                    outcome = self._filter(event) or self.handle(event)
                    if isinstance(outcome, Work):
                        if outcome.awaitable:  # overlaps on the engine's loop, counted in the same window
                            self._submit_async(slot, outcome)
                            continue
                        # Read at each event: a first slow step sends the rest of the round to the workers.
                        if limit > 1 and self._work_time >= INLINE_BELOW:
                            self._submit(slot, outcome)
                            continue
                        outcome = self._run_here(outcome)
                finally:
                    self._handling = None
                self._settle(slot, outcome)
        finally:
            self._prefetched.clear()

    @property
    def in_hand(self) -> str | None:
        """What the consumer is doing now, for the log if it does not stop."""
        slot = self._handling
        if slot is not None:
            event = slot.event
            return f"handling event {event.id} of run {event.run_id} on {self.topic}"
        if self._running:
            return f"waiting for {len(self._running)} step(s) in hand on {self.topic} to finish"
        return None

    @in_hand.setter
    def in_hand(self, value: str | None) -> None:
        """Set by the base class only (to None): what is in hand is read from the pipeline."""

    def _run_here(self, work: Work) -> Outcome:
        return work.then(self._timed(work.run))

    def _timed(self, run: Callable[[], Any]) -> Any:
        """``run()``, its duration added to the moving average that decides where work runs."""
        started = time.perf_counter()
        try:
            return run()
        finally:
            elapsed = time.perf_counter() - started
            average = self._work_time
            if average == 0.0:  # the first sample: a workflow of slow steps goes to the workers at once
                self._work_time = elapsed
            else:
                # One sample moves the average at most a few-fold: a quick step that another thread
                # kept from the interpreter (a loaded machine) does not send the next ones to the
                # workers; steps that really wait get there after about four samples.
                sample = min(elapsed, 4 * average + INLINE_BELOW / 4)
                # A plain float store: workers' updates may race and lose one sample, never corrupt it.
                self._work_time = 0.7 * average + 0.3 * sample

    def _submit(self, slot: _Slot, work: Work) -> None:
        workers = self._workers
        if workers is None:
            generation = self._generation
            finished = self._finished

            def done(token: Any, result: Any, error: BaseException | None) -> None:
                finished.put((generation, token, result, error))

            workers = self._workers = Workers(self.name, max(1, self.options.max_in_flight), done)
        self._running[slot] = work
        workers.submit(slot, functools.partial(self._timed, work.run))

    def _submit_async(self, slot: _Slot, work: Work) -> None:
        generation, finished = self._generation, self._finished

        def done(future: concurrent.futures.Future[Any]) -> None:
            try:
                result, error = future.result(), None
            except BaseException as exc:  # noqa: BLE001 - cancelled at stop, or ours: the consumer's thread decides
                result, error = None, exc
            finished.put((generation, slot, result, error))

        self._running[slot] = work
        self.engine.aio.submit(work.run(), done)

    def _take_finished(self, wait: float) -> None:
        """Settle the work the workers finished, waiting up to ``wait`` seconds for the first."""
        if not self._running:
            if wait > 0:
                time.sleep(wait)
            return
        try:
            item = self._finished.get(timeout=wait) if wait > 0 else self._finished.get_nowait()
        except queue.Empty:
            return
        while True:
            generation, slot, result, error = item
            work = self._running.pop(slot, None) if generation == self._generation else None
            if work is not None:
                if error is not None:
                    raise error  # Work.run catches the user's errors: anything else is ours
                self._settle(slot, work.then(result))
            try:
                item = self._finished.get_nowait()
            except queue.Empty:
                return

    def _settle(self, slot: _Slot, outcome: Outcome) -> None:
        """Record what handling the event came to."""
        self.metrics.latency.observe(time.perf_counter() - slot.started)
        if isinstance(outcome, Retry) and outcome.stale:
            outcome = self._stale_read(slot, outcome)
        if isinstance(outcome, Retry):
            heapq.heappush(self._retries, (time.monotonic() + outcome.delay, next(self._order), slot))
            return
        if isinstance(outcome, Write):
            if not self._staged:
                self._staged_at = time.monotonic()
            self._staged.append((slot, outcome))
            return
        if outcome is _COPY:
            self._finish(slot, twin=True)
            return
        if isinstance(outcome, Skipped):
            self.metrics.skipped(outcome.reason)
        self._finish(slot)

    def _stale_read(self, slot: _Slot, retry: Retry) -> Retry | Skipped:
        """``retry``, unless the event has been ahead of its record for `STALE_READ_LIMIT`: then skipped."""
        now = time.monotonic()
        if slot.stale_since is None:
            slot.stale_since = now
        if now - slot.stale_since < STALE_READ_LIMIT:
            return retry
        event = slot.event
        self.metrics.malformed.inc()
        self.log.error(
            "%s: event %s of run %s on %s skipped: its record_version %s stayed ahead of the record for %.1fs",
            self.name,
            event.id,
            event.run_id,
            self.topic,
            event.headers.get(Header.RECORD_VERSION),
            now - slot.stale_since,
        )
        return Skipped("event ahead of its record")

    def _finish(self, slot: _Slot, *, twin: bool = False) -> None:
        """The event is done: the cursor may pass it, and its run's next event is ready.

        ``twin``: it was the second copy of an event done here (dropped).
        """
        slot.done = True
        event = slot.event
        run_id = event.run_id
        if self._handoff_token is not None:
            key = _handed_key(event)
            # The first of two copies done: the other is dropped when it comes. A handed
            # event always has a streamer copy coming; a streamer event, only while its
            # handed twin is pending.
            first = slot.handed or key in self._handed_pending
            if slot.handed:
                self._handed_pending.pop(key, None)
            if first and not twin:
                self._handled_here(event)
            elif not slot.handed and not twin:
                self._log_copy_done(event)
        self._along.pop(run_id, None)
        waiting = self._behind.get(run_id)
        if waiting:
            self._ready.append(waiting.popleft())
        else:
            self._behind.pop(run_id, None)

    def _log_copy_done(self, event: Event) -> None:
        """Remember a log event done before any handed copy of it came (see ``_log_done``)."""
        self._remember(self._log_done, LOG_DONE_LIMIT, event)

    def _handled_here(self, event: Event) -> None:
        """An event is done (its write committed, or nothing to do): its twin is dropped unread.

        With the handoff on, each event comes twice: handed by the writer and from the
        streamer, in either order. Whichever is done first is remembered by run and version.
        """
        self._remember(self._handed_done, _HANDED_DONE_LIMIT, event)

    def _remember(self, done: dict[str, int], limit: int, event: Event) -> None:
        """Note ``event``'s version as its run's latest in ``done``; the runs noted longest ago go past ``limit``."""
        version = self.event_version(event)
        if version is None:
            return
        done.pop(event.run_id, None)
        done[event.run_id] = version
        if len(done) > limit:
            del done[next(iter(done))]

    def _due_retries(self) -> None:
        retries = self._retries
        now = time.monotonic()
        while retries and retries[0][0] <= now:
            self._ready.appendleft(heapq.heappop(retries)[2])

    def _commit_due(self) -> bool:
        if not self._staged:
            return False
        if len(self._staged) >= self.options.batch_size:
            return True
        if not (self._running or self._ready) or self._lag_until is not None:
            return True  # nothing else in hand that could join this commit
        return time.monotonic() - self._staged_at >= self.options.commit_interval

    def _commit(self, receiver: EventReceiver) -> None:
        """Store the staged writes in one transaction, then acknowledge past what is done."""
        staged, self._staged = self._staged, []
        writes = [write for _, write in staged]
        move = self._cursor_move(staged)
        try:
            results = self.engine.writer.commit(writes, fence=self.fence, ack=move)
        except StaleTerm:
            # Nothing stored or acknowledged: the new holder redoes these events.
            self.fenced_out([write.record.run_id for write in writes])
            return
        for (slot, write), error in zip(staged, results, strict=True):
            if error is not None:
                # Someone else moved the run since we read it; their event follows. The
                # step's work is lost: say so, a fleet's duplicate work must be seen.
                self.metrics.skipped("record version conflict")
                self.log.warning(
                    "%s/%s on node %s: run %s moved on before this step's result was stored "
                    "(version %d refused): the other write stands, this one is dropped",
                    self.engine.name,
                    self.name,
                    self.node_id,
                    write.record.run_id,
                    write.record.meta.version,
                )
            self._finish(slot)
        if move is not None:
            self._pass_done()  # the commit moved the cursor past them: no ack of their own
        self._acknowledge(receiver)

    def _cursor_move(self, staged: list[tuple[_Slot, Write]]) -> CursorMove | None:
        """The acknowledgement the commit of ``staged`` can make itself: past the last slot it leaves done.

        ``None`` when the store cannot (the receiver then acknowledges after the commit), or
        when the commit would not move the cursor. Once ``staged`` is committed (and so
        done), `_pass_done` drops exactly the slots the move covers.
        """
        moves = self._moves  # the receiver's own capability, checked when it was opened
        if moves is None:
            return None
        committing = {id(slot) for slot, _ in staged}
        last: _Slot | None = None
        for slot in self._window:
            if not (slot.done or id(slot) in committing):
                break
            if not slot.handed:
                last = slot
        return None if last is None else moves.cursor_move(last.event)

    def _pass_done(self) -> _Slot | None:
        """Drop the done slots at the window's head; the last dropped from the streamer (``None`` if none)."""
        window = self._window
        last: _Slot | None = None
        while window and window[0].done:
            slot = window.popleft()
            if not slot.handed:  # a handed event has no place in the stream: its copy does
                last = slot
        return last

    def _acknowledge(self, receiver: EventReceiver) -> None:
        """Acknowledge up to the last event before the first one not done (one call for them all)."""
        if not self.holding():
            return
        last = self._pass_done()
        if last is not None:
            self._ack(receiver, last.event)

    def _ack(self, receiver: EventReceiver, event: Event) -> None:
        """Acknowledge up to ``event``; under the role's lease when the streamer can check it (fencing)."""
        fence, fenced = self.fence, self._fenced_receiver
        if fence is None or not self.engine.capabilities.fenced_acks or fenced is None:
            receiver.ack(event)
            return
        try:
            fenced.ack_fenced(event, fence)
        except StaleTerm:
            # The role moved on: the cursor stays where the new holder has it, and it
            # reads these events again (what needed doing was committed, or needs nothing).
            self.fenced_out([event.run_id])

    def _filter(self, event: Event) -> Skipped | None:
        if self._handed_done and self._already_handed(event, forget=True):
            return _COPY
        if event.malformed:
            self.metrics.malformed.inc()
            self.log.error("%s: malformed event %s on %s skipped: %s", self.name, event.id, self.topic, event.malformed)
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
        try:
            if found is None:
                found = self.engine.record_store.lookup(event.run_id)
        except RecordNotFound:
            return Skipped("record not found")
        except CorruptRecord as exc:
            # The event is fine, the stored run is not: a corrupt record (alert
            # ActorflowCorruptRecords), not a malformed event. A row that is no record has
            # no version to pause from, so the event is skipped; the run stays as found.
            self.metrics.corrupt.inc()
            self.log.error(  # noqa: TRY400 - a corrupt row: its message says all
                "%s: run %s cannot be read, event skipped: %s",
                self.name,
                event.run_id,
                exc,
                extra={"run_id": event.run_id},
            )
            return Skipped("corrupt record")
        self.engine.writer.observed(found)  # settles a write of this run whose commit failed, if any
        return found

    def load(self, event: Event, status: int | None) -> Record | Skipped | Retry | Write:
        """The event's record if the event is current and the run may move, else why not.

        Skips events of runs that are gone, older than the record (already handled), for
        another status, or of a stopped run; retries when the record is older than the
        event (a stale read: the store has not caught up yet). A current record whose
        stored status is not in the workflow's enum is corrupt: the pause to store
        (`Engine.fail`, reported and counted), since no consumer would ever meet it again.
        """
        record = self.lookup(event)
        if isinstance(record, Skipped):
            return record
        version = self.event_version(event)
        if version is None:
            if Header.RECORD_VERSION in event.headers:
                self.metrics.malformed.inc()
                self.log.warning("%s: malformed record_version on event %s; skipped", self.name, event.id)
                return Skipped("malformed event")
            # Legacy event without a version: it is current if the record is where it says.
            version = record.meta.version if record.status == event.type else 0
        if record.meta.version > version:
            return Skipped("event record version lower than latest record version")
        if record.meta.version < version:
            return Retry(self.options.err_backoff, stale=True)
        if status is not None and record.status != status:
            corrupt = self.engine.unknown_status(record)
            if corrupt is not None and not record.run_state.stopped:
                pause = self.engine.fail(self.name, record, corrupt, self.options.pause_after_err_count)
                return pause if pause is not None else Skipped("corrupt record")
            if Header.RECORD_VERSION in event.headers:
                # The event was written with this very version at ``status``: the stored
                # row says otherwise, so one of them is corrupt. Report it, skip it.
                self.metrics.corrupt.inc()
                self.log.error(
                    "%s/%s: run %s is stored at version %d with status %d, but its event says status %d; "
                    "event skipped (corrupt record?)",
                    self.engine.name,
                    self.name,
                    record.run_id,
                    version,
                    record.status,
                    status,
                )
                return Skipped("corrupt record")
            return Skipped("record status not in expected state")
        if record.run_state.stopped:
            return Skipped("record stopped")
        return record
