"""The `EventStreamer` conformance suite: cursors, acks, shards, wake-ups and the acceptance run."""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from actorflow.capabilities import InterruptibleReceiver
from actorflow.clock import FakeClock
from actorflow.event import Event, Header, shard_of
from actorflow.protocols import EventReceiver, EventSender, EventStreamer, ReceiverOptions
from actorflow.testing.adaptertest._workflows import (
    EMAIL,
    EventStreamerFactory,
    SyncStatus,
    User,
    make_streamer,
    sync_user_workflow,
)
from actorflow.testing.helpers import await_timeout_insert

__all__ = ["EventStreamerFactory", "EventStreamerSuite"]


class _Streams:
    """The senders and receivers a case opens; whatever is still open is closed after it."""

    def __init__(self) -> None:
        self._open: list[EventSender | EventReceiver] = []

    def sender(self, streamer: EventStreamer, topic: str) -> EventSender:
        sender = streamer.new_sender(topic)
        self._open.append(sender)
        return sender

    def receiver(
        self, streamer: EventStreamer, topic: str, name: str, options: ReceiverOptions | None = None
    ) -> EventReceiver:
        receiver = streamer.new_receiver(topic, name, options)
        self._open.append(receiver)
        return receiver

    def close(self, resource: EventSender | EventReceiver) -> None:
        self._open.remove(resource)
        resource.close()

    def close_all(self) -> None:
        while self._open:
            self._open.pop().close()


def collect(receiver: EventReceiver, count: int, timeout: float = 5.0) -> list[Event]:
    """Receive until ``count`` events arrived or ``timeout`` seconds passed (the suites share it)."""
    out: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        out.extend(receiver.receive(count - len(out), remaining))
    return out


def _send(sender: EventSender, topic: str, run_ids: list[str], event_type: int = 5) -> None:
    for run_id in run_ids:
        sender.send(run_id, event_type, {Header.TOPIC: topic})
    sender.flush()


class EventStreamerSuite:
    """Conformance tests every `actorflow.protocols.EventStreamer` must pass.

    Subclass it under a ``Test...`` name and give it a ``make_event_streamer`` fixture: a
    callable returning a fresh streamer with no events and no cursors. When it accepts a
    ``clock`` keyword, the acceptance case passes the workflow's `FakeClock`. It may be a
    generator fixture that cleans up after the test::

        import pytest
        from actorflow.adapters.memory import MemoryEventStreamer
        from actorflow.testing.adaptertest import EventStreamerSuite

        class TestMemoryEventStreamer(EventStreamerSuite):
            @pytest.fixture
            def make_event_streamer(self):
                return MemoryEventStreamer  # MemoryEventStreamer(clock=...) works too

    The cases port ``adaptertest.RunEventStreamerTest`` (StreamFromLatest 1a/1b and the
    ``sync user 2`` run through), then the receiver contract: durable named cursors,
    cumulative acks, shard options, waking on a send, order per run, exact headers.
    """

    @pytest.fixture
    def make_event_streamer(self) -> EventStreamerFactory:
        """Override this: return a callable making a fresh event streamer."""
        pytest.fail(
            "EventStreamerSuite needs a make_event_streamer fixture: define "
            "`@pytest.fixture def make_event_streamer(self): return MyEventStreamer` in your test class"
        )

    @pytest.fixture
    def streams(self) -> Iterator[_Streams]:
        """Senders and receivers opened by a case, closed when it ends."""
        opened = _Streams()
        yield opened
        opened.close_all()

    # -- the original's cases -----------------------------------------------------------

    def _stream_from_latest(self, streamer: EventStreamer, streams: _Streams) -> EventSender:
        """1a: a new receiver with stream_from_latest gets only events sent after it connected."""
        topic = "test-1"
        sender = streams.sender(streamer, topic)
        sender.send("123", 4, {Header.TOPIC: topic})
        _send(sender, topic, ["456"])
        receiver = streams.receiver(streamer, topic, "my-receiver", ReceiverOptions(stream_from_latest=True))

        _send(sender, topic, ["789"])
        (event,) = collect(receiver, 1)
        assert event.run_id == "789"
        receiver.ack(event)
        streams.close(receiver)
        return sender

    def test_stream_from_latest_only_receives_events_after_connecting(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """StreamFromLatest: a new receiver skips what was sent before it (original case 1a)."""
        self._stream_from_latest(make_streamer(make_event_streamer), streams)

    def test_stream_from_latest_has_no_effect_when_cursor_is_committed(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """StreamFromLatest: a receiver name with a cursor resumes from it (original case 1b)."""
        streamer = make_streamer(make_event_streamer)
        sender = self._stream_from_latest(streamer, streams)

        _send(sender, "test-1", ["101"])
        receiver = streams.receiver(streamer, "test-1", "my-receiver", ReceiverOptions(stream_from_latest=True))
        events = collect(receiver, 1)
        assert [e.run_id for e in events] == ["101"]
        receiver.ack(events[0])

    def test_acceptance_full_workflow_run_through(self, make_event_streamer: EventStreamerFactory) -> None:
        """``sync user 2`` runs to Completed through a one-hour timeout on a fake clock (original case)."""
        clock = FakeClock(datetime(2023, 4, 9, 8, 30, tzinfo=UTC))
        wf = sync_user_workflow(make_streamer(make_event_streamer, clock), clock)
        wf.run()
        try:
            run_id = wf.trigger("1", initial_value=User(country_code="GB"))
            await_timeout_insert(wf, "1", run_id, SyncStatus.EMAIL_SET)
            clock.advance(timedelta(hours=1))
            run = wf.await_status("1", run_id, SyncStatus.COMPLETED, timeout=10)
        finally:
            wf.stop()
        assert run.object.email == EMAIL
        assert run.status is SyncStatus.COMPLETED
        assert run.object.uid

    # -- cursors and acks ---------------------------------------------------------------

    def test_receiver_resumes_after_the_last_acked_event(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """A receiver re-created under the same name starts after the last ack; the rest come again.

        Only one run's events are promised in order: across runs (partitions), the
        delivery order is the adapter's, and acks follow it.
        """
        streamer = make_streamer(make_event_streamer)
        sender = streams.sender(streamer, "resume")
        _send(sender, "resume", [f"run-{i}" for i in range(5)])

        receiver = streams.receiver(streamer, "resume", "resumer")
        events = collect(receiver, 5)
        assert sorted(e.run_id for e in events) == [f"run-{i}" for i in range(5)]
        receiver.ack(events[0])
        receiver.ack(events[1])
        streams.close(receiver)

        again = streams.receiver(streamer, "resume", "resumer")
        redelivered = collect(again, 3)
        assert sorted((e.id, e.run_id) for e in redelivered) == sorted((e.id, e.run_id) for e in events[2:])
        assert again.receive(10, 0.2) == []

    def test_ack_is_cumulative(self, make_event_streamer: EventStreamerFactory, streams: _Streams) -> None:
        """Acking an event commits every event delivered before it too."""
        streamer = make_streamer(make_event_streamer)
        sender = streams.sender(streamer, "cumulative")
        _send(sender, "cumulative", [f"run-{i}" for i in range(5)])

        receiver = streams.receiver(streamer, "cumulative", "acker")
        events = collect(receiver, 5)
        assert len(events) == 5
        receiver.ack(events[3])
        streams.close(receiver)

        again = streams.receiver(streamer, "cumulative", "acker")
        assert [(e.id, e.run_id) for e in collect(again, 1)] == [(events[4].id, events[4].run_id)]
        assert again.receive(10, 0.2) == []

    def test_receivers_with_different_names_each_get_every_event(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """Cursors are per name: two names each receive the whole topic."""
        streamer = make_streamer(make_event_streamer)
        first = streams.receiver(streamer, "fan-out", "first")
        second = streams.receiver(streamer, "fan-out", "second")
        sender = streams.sender(streamer, "fan-out")
        run_ids = [f"run-{i}" for i in range(10)]
        _send(sender, "fan-out", run_ids)

        for receiver in (first, second):
            events = collect(receiver, 10)
            assert sorted(e.run_id for e in events) == sorted(run_ids)
            receiver.ack(events[-1])

    def test_a_receiver_reads_only_its_topic(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """Events sent to another topic never reach a receiver."""
        streamer = make_streamer(make_event_streamer)
        receiver = streams.receiver(streamer, "topic-a", "reader")
        _send(streams.sender(streamer, "topic-b"), "topic-b", ["b-1", "b-2"])
        _send(streams.sender(streamer, "topic-a"), "topic-a", ["a-1"])
        events = collect(receiver, 1)
        assert [e.run_id for e in events] == ["a-1"]
        assert receiver.receive(10, 0.2) == []

    # -- shards ---------------------------------------------------------------------------

    def test_sharded_receivers_together_receive_every_event(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """N shard receivers cover the topic; an adapter that filters gives each run to shard_of(run_id, n)."""
        streamer = make_streamer(make_event_streamer)
        n = 3
        sender = streams.sender(streamer, "sharded")
        sent = [(f"run-{k}", seq) for seq in range(2) for k in range(30)]  # two events per run
        for run_id, seq in sent:
            sender.send(run_id, seq + 1, {Header.TOPIC: "sharded", "seq": str(seq)})
        sender.flush()
        everything = set(sent)
        shares = [{key for key in sent if shard_of(key[0], n) == i} for i in range(n)]
        assert all(shares), "the suite's own data gives every shard a share"

        union: set[tuple[str, int]] = set()
        for shard in range(n):
            options = ReceiverOptions(shard=shard, shard_count=n)
            receiver = streams.receiver(streamer, "sharded", f"sharded-consumer-{shard}-of-{n}", options)
            got: list[tuple[str, int]] = []
            deadline = time.monotonic() + 5.0
            while not shares[shard] <= set(got) and time.monotonic() < deadline:
                got += [
                    (e.run_id, int(e.headers["seq"]))
                    for e in receiver.receive(100, max(0.0, deadline - time.monotonic()))
                ]
            while extra := receiver.receive(100, 0.2):  # whatever else the adapter delivers
                got += [(e.run_id, int(e.headers["seq"])) for e in extra]

            assert len(got) == len(set(got)), f"shard {shard} received an event twice"
            assert shares[shard] <= set(got), f"shard {shard} missed events of its own share"
            filtered = set(got) != everything
            if filtered:
                strays = [key for key in got if shard_of(key[0], n) != shard]
                assert not strays, f"shard {shard} of a filtering adapter got other shards' events: {strays}"
            for run_id in {key[0] for key in got}:
                assert [seq for r, seq in got if r == run_id] == [0, 1], f"{run_id} out of order on shard {shard}"
            union |= set(got)
        assert union == everything

    # -- waiting ----------------------------------------------------------------------------

    def test_receive_returns_as_soon_as_an_event_is_sent(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """receive() waits on a condition: a send from another thread wakes it well before its timeout."""
        streamer = make_streamer(make_event_streamer)
        receiver = streams.receiver(streamer, "wake", "sleeper")
        sender = streams.sender(streamer, "wake")
        _send(sender, "wake", ["warm-up"])  # the receiver is connected once it has read one event
        receiver.ack(collect(receiver, 1)[0])

        timer = threading.Timer(0.2, _send, args=(sender, "wake", ["wake-up"]))
        started = time.monotonic()
        timer.start()
        try:
            events = receiver.receive(10, 5.0)
            elapsed = time.monotonic() - started
        finally:
            timer.join(timeout=5)
        assert [e.run_id for e in events] == ["wake-up"]
        assert elapsed < 1.0, f"receive took {elapsed:.2f}s to see an event sent after 0.2s"

    def test_an_interruptible_receive_returns_when_interrupted(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """interrupt() from another thread makes a waiting receive() return (a stopping node's consumers).

        `InterruptibleReceiver` is optional; every shipped streamer's receivers have it.
        """
        streamer = make_streamer(make_event_streamer)
        receiver = streams.receiver(streamer, "interrupt", "waiter")
        if not isinstance(receiver, InterruptibleReceiver):
            pytest.skip("this streamer's receivers cannot be interrupted (InterruptibleReceiver is optional)")
        sender = streams.sender(streamer, "interrupt")
        _send(sender, "interrupt", ["warm-up"])  # the receiver is connected once it has read one event
        receiver.ack(collect(receiver, 1)[0])
        returned = threading.Event()

        def wait() -> None:
            receiver.receive(10, 60.0)
            returned.set()

        waiter = threading.Thread(target=wait, name="interrupted-receive")
        waiter.start()
        try:
            receiver.interrupt()  # before or during its wait: "the current or next" receive returns
            assert returned.wait(10.0), "receive() went on waiting after interrupt()"
        finally:
            waiter.join(timeout=70)

    def test_receive_returns_nothing_after_the_timeout(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """With nothing to read, receive() returns [] once its timeout has passed."""
        streamer = make_streamer(make_event_streamer)
        receiver = streams.receiver(streamer, "quiet", "listener")
        started = time.monotonic()
        assert list(receiver.receive(10, 0.3)) == []
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 2.3, f"receive(timeout=0.3) returned after {elapsed:.2f}s"

    # -- what events carry ----------------------------------------------------------------

    def test_events_of_one_run_come_out_in_send_order(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """Events of a run arrive in the order sent; ids increase; max_events is respected."""
        streamer = make_streamer(make_event_streamer)
        sender = streams.sender(streamer, "ordered")
        sent = [(run_id, event_type) for event_type in range(1, 11) for run_id in ("a", "b")]
        for run_id, event_type in sent:
            sender.send(run_id, event_type, {Header.TOPIC: "ordered"})
        sender.flush()

        receiver = streams.receiver(streamer, "ordered", "orderly")
        first = receiver.receive(3, 5.0)
        assert 1 <= len(first) <= 3
        events = [*first, *collect(receiver, len(sent) - len(first))]
        assert len(events) == len(sent)
        for run_id in ("a", "b"):
            assert [e.type for e in events if e.run_id == run_id] == list(range(1, 11))
            ids = [e.id for e in events if e.run_id == run_id]
            assert ids == sorted(ids)

    def test_headers_and_fields_round_trip_exactly(
        self, make_event_streamer: EventStreamerFactory, streams: _Streams
    ) -> None:
        """An event carries its run id, type and headers exactly; ids are ints, times aware."""
        streamer = make_streamer(make_event_streamer)
        headers = {
            Header.WORKFLOW_NAME: "my workflow",
            Header.FOREIGN_ID: "Andrew Wormald ✓",
            Header.TOPIC: "headers",
            Header.RUN_ID: "run-ü",
            Header.RUN_STATE: "2",
            Header.RECORD_VERSION: "12",
            Header.CONNECTOR_DATA: '{"k": "v", "n": [1, 2]}',
            "custom-header": "välue with spaces",
            "empty": "",
        }
        sender = streams.sender(streamer, "headers")
        sender.send("run-ü", 7, headers)
        sender.flush()
        receiver = streams.receiver(streamer, "headers", "inspector")
        (event,) = collect(receiver, 1)
        assert event.run_id == "run-ü"
        assert event.type == 7
        assert dict(event.headers) == headers
        assert isinstance(event.id, int)
        assert event.created_at.tzinfo is not None, "created_at must be timezone-aware"
        receiver.ack(event)
