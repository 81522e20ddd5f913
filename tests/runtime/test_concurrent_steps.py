"""Steps that wait run side by side within a shard: ordering per run, the cursor, commits and stopping.

On the memory adapters, with a streamer that notes what each consumer receives and
acknowledges. Every step here waits on an event the test sets, never on a guessed time;
the one short wait is the warm-up step, which is what makes the shard use its workers
(a step that takes a few ms, as an HTTP call would).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.protocols import Event, EventReceiver, EventSender, ReceiverOptions
from tests.model import Order, Status
from tests.waiting import eventually

STARTED_TOPIC = "conc-1"


class _Receiver:
    def __init__(self, inner: EventReceiver, spy: SpyStreamer, topic: str) -> None:
        self._inner, self._spy, self._topic = inner, spy, topic

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        events = self._inner.receive(max_events, timeout)
        with self._spy.lock:
            self._spy.received.setdefault(self._topic, []).extend(events)
        return events

    def ack(self, event: Event) -> None:
        with self._spy.lock:
            self._spy.acks.setdefault(self._topic, []).append(event.id)
        self._inner.ack(event)

    def close(self) -> None:
        self._inner.close()


class SpyStreamer:
    """A memory streamer that notes, per topic, the events its receivers got and the ids they acknowledged."""

    def __init__(self) -> None:
        self.inner = MemoryEventStreamer()
        self.lock = threading.Lock()
        self.received: dict[str, list[Event]] = {}
        self.acks: dict[str, list[int]] = {}

    def new_sender(self, topic: str) -> EventSender:
        return self.inner.new_sender(topic)

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> EventReceiver:
        return _Receiver(self.inner.new_receiver(topic, name, options), self, topic)

    def acked(self, topic: str) -> int:
        with self.lock:
            return max(self.acks.get(topic, [0]))

    def event_of(self, topic: str, run_id: str) -> Event:
        with self.lock:
            return next(e for e in self.received.get(topic, []) if e.run_id == run_id)


class Gates:
    """Per foreign id: a gate its step waits at, and what is running now."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}
        self.running: dict[str, int] = {}
        self.calls: list[str] = []
        self.most = 0

    def gate(self, foreign_id: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(foreign_id, threading.Event())

    def step(self, run: af.Run[Order, Status]) -> Status:
        fid = run.foreign_id
        if fid == "warm":
            # A step that waits a few ms, as an I/O call does: the shard now runs steps on workers.
            threading.Event().wait(0.01)
            return Status.DONE
        gate = self.gate(fid)
        with self.lock:
            self.calls.append(fid)
            self.running[fid] = self.running.get(fid, 0) + 1
            self.most = max(self.most, sum(self.running.values()))
        try:
            assert gate.wait(20), f"the test never opened {fid}'s gate"
        finally:
            with self.lock:
                self.running[fid] -= 1
        return Status.DONE

    def now(self) -> int:
        with self.lock:
            return sum(self.running.values())

    def open_all(self) -> None:
        with self.lock:
            gates = list(self.gates.values())
        for gate in gates:
            gate.set()


@pytest.fixture
def gates() -> Iterator[Gates]:
    made = Gates()
    yield made
    made.open_all()


@pytest.fixture
def make(gates: Gates) -> Iterator[Any]:
    """``make(**options)``: the 1-step workflow on spied memory adapters, running and warmed up."""
    made: list[af.Workflow[Any, Any]] = []

    def _make(**options: Any) -> tuple[af.Workflow[Order, Status], SpyStreamer]:
        spy = SpyStreamer()
        b = af.Builder("conc", Order, Status)
        b.add_step(Status.STARTED, gates.step, Status.DONE).with_options(**options)
        wf = b.build(spy, MemoryRecordStore(), MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.02))
        made.append(wf)
        wf.run()
        warm = wf.trigger("warm")
        wf.await_status("warm", warm, Status.DONE, timeout=10)
        return wf, spy

    yield _make
    gates.open_all()
    for wf in made:
        wf.stop()


def test_steps_that_wait_run_side_by_side_up_to_max_in_flight(make, gates):
    """Eight runs, max_in_flight=4: four steps wait at once, no more; all complete once released."""
    wf, _ = make(max_in_flight=4)
    ids = {f"r{i}": wf.trigger(f"r{i}") for i in range(8)}
    eventually(lambda: gates.now() == 4, timeout=10, what="four steps waiting at once")
    gates.open_all()
    eventually(lambda: len(gates.calls) == 8, timeout=10, what="the other four steps started")
    gates.open_all()
    for fid, run_id in ids.items():
        wf.await_status(fid, run_id, Status.DONE, timeout=10)
    assert gates.most == 4
    assert sorted(gates.calls) == sorted(ids)


def test_a_finished_step_is_committed_while_another_step_still_runs(make, gates):
    """The commit does not wait for the whole batch: B completes while A's step is still in hand."""
    wf, _ = make()
    a = wf.trigger("A")
    eventually(lambda: gates.now() == 1, what="A's step running")
    b = wf.trigger("B")
    gates.gate("B").set()
    wf.await_status("B", b, Status.DONE, timeout=10)
    assert gates.now() == 1, "A's step should still be waiting"
    gates.gate("A").set()
    wf.await_status("A", a, Status.DONE, timeout=10)


def test_the_cursor_stays_before_a_step_in_hand_until_it_is_committed(make, gates):
    """B, after A in the stream, is committed first; the acknowledged position stays before A's event until A's is."""
    wf, spy = make()
    a = wf.trigger("A")
    eventually(lambda: gates.now() == 1, what="A's step running")
    b = wf.trigger("B")
    gates.gate("B").set()
    wf.await_status("B", b, Status.DONE, timeout=10)
    a_event, b_event = spy.event_of(STARTED_TOPIC, a), spy.event_of(STARTED_TOPIC, b)
    assert a_event.id < b_event.id
    assert spy.acked(STARTED_TOPIC) < a_event.id, "the cursor passed a step whose result is not stored"
    gates.gate("A").set()
    wf.await_status("A", a, Status.DONE, timeout=10)
    eventually(lambda: spy.acked(STARTED_TOPIC) >= b_event.id, what="the cursor past both once A is stored")


def test_a_runs_second_event_waits_for_its_first_and_is_then_skipped(make, gates):
    """A duplicate of A's event (a redelivery) arrives while A's step runs: it does not run A's step beside it."""
    wf, spy = make()
    a = wf.trigger("A")
    eventually(lambda: gates.now() == 1, what="A's step running")
    first = spy.event_of(STARTED_TOPIC, a)
    sender = spy.new_sender(STARTED_TOPIC)
    sender.send(a, first.type, dict(first.headers))
    sender.flush()
    b = wf.trigger("B")  # behind the duplicate in the stream: handled, so the duplicate was read
    gates.gate("B").set()
    wf.await_status("B", b, Status.DONE, timeout=10)
    assert gates.calls.count("A") == 1
    gates.gate("A").set()
    wf.await_status("A", a, Status.DONE, timeout=10)
    eventually(lambda: spy.acked(STARTED_TOPIC) >= spy.event_of(STARTED_TOPIC, b).id, what="everything acknowledged")
    assert gates.calls.count("A") == 1, "the duplicate ran A's step again"


def test_stopping_waits_for_the_steps_in_hand_and_stores_their_results(make, gates):
    """wf.stop() with two steps running: they finish, their results are stored, the cursor passes them."""
    wf, spy = make()
    ids = {fid: wf.trigger(fid) for fid in ("A", "B")}
    eventually(lambda: gates.now() == 2, what="two steps running")
    opener = threading.Timer(0.05, gates.open_all)  # while stop() waits for them
    opener.start()
    try:
        wf.stop()
    finally:
        opener.join()
    for fid, run_id in ids.items():
        assert wf.record_store.lookup(run_id).status == Status.DONE, fid
    assert spy.acked(STARTED_TOPIC) >= max(spy.event_of(STARTED_TOPIC, r).id for r in ids.values())


def test_quick_steps_run_on_the_shard_thread():
    """Steps that return at once never reach a worker thread (a CPU-bound step pays no hand-off)."""
    threads: set[str] = set()
    spy = SpyStreamer()
    b = af.Builder("quick", Order, Status)

    def quick(run: af.Run[Order, Status]) -> Status:
        threads.add(threading.current_thread().name)
        return Status.DONE

    b.add_step(Status.STARTED, quick, Status.DONE)
    wf = b.build(spy, MemoryRecordStore(), MemoryRoleScheduler())
    wf.run()
    try:
        ids = {f"q{i}": wf.trigger(f"q{i}") for i in range(50)}
        for fid, run_id in ids.items():
            wf.await_status(fid, run_id, Status.DONE, timeout=10)
    finally:
        wf.stop()
    assert not any("worker" in name for name in threads), threads
