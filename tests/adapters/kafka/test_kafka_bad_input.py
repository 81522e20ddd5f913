"""Bad input on Kafka: unreadable messages are handed over as malformed; an unreachable broker is a clear error."""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler, MemoryTimeoutStore
from actorflow.event import Header
from actorflow.protocols import ReceiverOptions
from tests.kafka_fixtures import raw_producer
from tests.waiting import eventually

pytestmark = pytest.mark.kafka


class S(enum.IntEnum):
    A = 1
    B = 2


@dataclasses.dataclass
class Obj:
    x: int = 0


# (key, value, headers) of messages luno/workflow would never write, and why each is unreadable.
BAD = [
    (b"run-no-headers", b"1", [], "missing header(s) topic"),
    (b"run-garbage", b"\x00\xffnot a status", [("topic", b"malformed-1")], "is not a decimal status"),
    (b"\xff\xfe", b"1", [("topic", b"malformed-1")], "the key (run id) is not UTF-8"),
    (None, b"1", [("topic", b"malformed-1")], "no key (run id)"),
    (b"run-bad-header", b"1", [("topic", b"\xff")], "a header value is not UTF-8"),
]


def produce_bad(servers: str, topic: str, partitions: int) -> None:
    """Every bad message on every partition of ``topic``."""
    with raw_producer(servers) as producer:
        for partition in range(partitions):
            for key, value, headers, _ in BAD:
                producer.send(topic, key=key, value=value, headers=headers, partition=partition)
        producer.flush()


def test_unreadable_messages_come_out_marked_malformed_in_place(kafka_broker, kafka_prefix):
    """Each kind of unreadable message is delivered, in its place, as an Event with `malformed` saying why."""
    from actorflow.adapters.kafka import KafkaEventStreamer

    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=1)
    receiver = None
    try:
        sender = streamer.new_sender("malformed-1")
        sender.send("good-1", 1, {Header.TOPIC: "malformed-1"})
        sender.flush()
        produce_bad(kafka_broker, f"{kafka_prefix}malformed-1", 1)
        sender.send("good-2", 1, {Header.TOPIC: "malformed-1"})
        sender.flush()

        receiver = streamer.new_receiver("malformed-1", "reader")
        got: list[Any] = []
        deadline = time.monotonic() + 5
        while len(got) < len(BAD) + 2 and time.monotonic() < deadline:
            got.extend(receiver.receive(100, 1.0))
        assert [e.malformed == "" for e in got] == [True] + [False] * len(BAD) + [True]
        assert [e.run_id for e in (got[0], got[-1])] == ["good-1", "good-2"]
        for event, (*_, why) in zip(got[1:-1], BAD, strict=True):
            assert why in event.malformed
    finally:
        if receiver is not None:
            receiver.close()
        streamer.close()


@pytest.mark.postgres
def test_the_engine_counts_and_skips_malformed_messages_and_later_runs_complete(
    kafka_broker, kafka_prefix, pg_dsn, pg_schema
):
    """Malformed messages ahead of real events on every partition are counted, skipped, and block nothing."""
    from prometheus_client import CollectorRegistry

    from actorflow.adapters.kafka import KafkaEventStreamer
    from actorflow.adapters.postgres import PostgresRecordStore

    b = af.Builder("malformed", Obj, S)
    b.add_step(S.A, lambda run: S.B, S.B)
    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=2)
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    registry = CollectorRegistry()
    try:
        wf = b.build(streamer, store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
        streamer.ensure_topic("malformed-1")
        produce_bad(kafka_broker, f"{kafka_prefix}malformed-1", 2)
        runs = {f"after-{i}": wf.trigger(f"after-{i}", Obj()) for i in range(6)}
        with af.Supervisor([wf], registry=registry):
            for foreign_id, run_id in runs.items():
                wf.await_status(foreign_id, run_id, S.B, timeout=15)
        labels = {"workflow_name": "malformed", "process_name": "a-consumer-1-of-1"}
        assert registry.get_sample_value("actorflow_malformed_events_total", labels) == 2 * len(BAD)
    finally:
        streamer.close()
        store.close()


# (key, value, headers) of hostile numbers: before issue 14 int() raised on each, and the
# topic's consumer crashed on it, restarted, read it again, and crashed again, for ever.
HUGE = [
    (b"run-huge-status", b"9" * 5000, [("topic", b"huge-1")]),  # int() refuses 4,301+ digits
    (b"run-int64-overflow", b"9" * 19, [("topic", b"huge-1")]),  # past the signed 64-bit range
    (b"run-huge-version", b"1", [("topic", b"huge-1"), ("record_version", b"9" * 5000)]),
]


def test_a_5000_digit_status_is_skipped_and_the_next_run_completes(kafka_broker, kafka_prefix, tmp_path):
    """Issue 14: hostile numbers ahead of a real event are counted and skipped; the run behind them completes."""
    from prometheus_client import CollectorRegistry

    from actorflow.adapters.kafka import KafkaEventStreamer
    from actorflow.adapters.sqlite import SqliteRecordStore

    b = af.Builder("huge", Obj, S)
    b.add_step(S.A, lambda run: S.B, S.B)
    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=1)  # one partition: bad ones come first
    store = SqliteRecordStore(tmp_path / "huge.db")
    registry = CollectorRegistry()
    try:
        wf = b.build(streamer, store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
        streamer.ensure_topic("huge-1")
        with raw_producer(kafka_broker) as producer:
            for key, value, headers in HUGE:
                producer.send(f"{kafka_prefix}huge-1", key=key, value=value, headers=headers, partition=0)
            producer.flush()
        run_id = wf.trigger("after-huge", Obj())
        with af.Supervisor([wf], registry=registry):
            wf.await_status("after-huge", run_id, S.B, timeout=15)
        labels = {"workflow_name": "huge", "process_name": "a-consumer-1-of-1"}
        assert registry.get_sample_value("actorflow_malformed_events_total", labels) == len(HUGE)
    finally:
        streamer.close()
        store.close()


def test_an_unreachable_broker_is_a_clear_error_within_seconds():
    """Nothing listens at the address: KafkaError naming it, at once, and no thread left behind."""
    from actorflow.adapters.kafka import KafkaError, KafkaEventStreamer

    streamer = KafkaEventStreamer("127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(KafkaError, match=r"127\.0\.0\.1:1") as caught:
        streamer.new_receiver("orders-1", "orders-1-consumer-1-of-1", ReceiverOptions())
    assert time.monotonic() - started < 5
    assert isinstance(caught.value, af.ActorflowError)
    with pytest.raises(KafkaError, match=r"127\.0\.0\.1:1"):
        streamer.new_sender("orders-1")
    streamer.close()


def test_a_broker_that_does_not_speak_kafka_is_an_error_within_the_bootstrap_timeout():
    """A port that accepts connections but never answers: KafkaError after bootstrap_timeout_ms, not a hang."""
    import socket

    from actorflow.adapters.kafka import KafkaError, KafkaEventStreamer

    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)
        address = f"127.0.0.1:{mute.getsockname()[1]}"
        streamer = KafkaEventStreamer(address, client_options={"bootstrap_timeout_ms": 1000})
        started = time.monotonic()
        with pytest.raises(KafkaError, match=address):
            streamer.new_sender("orders-1")
        assert time.monotonic() - started < 5
        streamer.close()


def test_a_supervisor_on_an_unreachable_broker_fails_to_start_with_the_address(tmp_path):
    """start() checks the broker (Attachable.attach): the error names the address; nothing keeps running."""
    from actorflow.adapters.kafka import KafkaError, KafkaEventStreamer
    from actorflow.adapters.sqlite import SqliteRecordStore
    from tests.model import three_steps

    store = SqliteRecordStore(tmp_path / "away.db")
    wf = three_steps("away").build(KafkaEventStreamer("127.0.0.1:1"), store, MemoryRoleScheduler())
    sup = af.Supervisor([wf])
    started = time.monotonic()
    try:
        with pytest.raises(KafkaError, match=r"127\.0\.0\.1:1"):
            sup.start()
        assert time.monotonic() - started < 15
        assert not sup.running
    finally:
        store.close()


class _RawName(str):
    """A header name kafka-python's producer writes as the given bytes (it encodes names itself, as UTF-8)."""

    __slots__ = ()
    raw = b"\xff\xfename"

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def produce_undecodable_header_name(servers: str, topic: str, between: tuple[bytes, bytes] | None = None) -> None:
    """A message whose header name is not UTF-8 (kafka-python's consumer cannot decode it), on partition 0.

    ``between``: the keys of two readable messages sent around it in the same batch.
    """
    topic_header = ("topic", b"undecodable-1")
    with raw_producer(servers) as producer:
        if between:
            producer.send(topic, key=between[0], value=b"1", headers=[topic_header], partition=0)
        headers = [(_RawName("x"), b"1"), topic_header]
        producer.send(topic, key=b"run-bad-name", value=b"1", headers=headers, partition=0)
        if between:
            producer.send(topic, key=between[1], value=b"1", headers=[topic_header], partition=0)
        producer.flush()


@pytest.mark.parametrize("batching", ["own batch", "mid-batch"])
def test_a_header_name_not_utf8_is_skipped_as_malformed_in_place(kafka_broker, kafka_prefix, batching):
    """kafka-python cannot decode the message (and, polled again, spins on it): it comes out malformed, the next follow.

    In a batch of its own, or between readable messages of its batch (kafka-python hands
    out the ones before it, then raises at the next poll; it decodes a batch from its
    start, so the messages after it in its batch are unreadable too). Read again from the
    committed offset, past it: the reader moved on and acknowledged it.
    """
    from actorflow.adapters.kafka import KafkaEventStreamer

    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=1)
    receivers: list[Any] = []
    topic = f"{kafka_prefix}undecodable-1"
    try:
        if batching == "mid-batch":
            streamer.ensure_topic("undecodable-1")
            produce_undecodable_header_name(kafka_broker, topic, between=(b"good-1", b"good-2"))
        else:
            sender = streamer.new_sender("undecodable-1")
            sender.send("good-1", 1, {Header.TOPIC: "undecodable-1"})
            sender.flush()
            produce_undecodable_header_name(kafka_broker, topic)
            sender.send("good-2", 1, {Header.TOPIC: "undecodable-1"})
            sender.flush()

        def read(count: int) -> list[Any]:
            receiver = streamer.new_receiver("undecodable-1", "reader")
            receivers.append(receiver)
            got: list[Any] = []
            deadline = time.monotonic() + 5
            while len(got) < count and time.monotonic() < deadline:
                got.extend(receiver.receive(100, 0.5))
            return got

        got = read(3)
        assert [e.run_id for e in got] == ["good-1", "", "" if batching == "mid-batch" else "good-2"]
        assert [e.malformed == "" for e in got] == [True, False, batching == "own batch"]
        assert "UnicodeDecodeError" in got[1].malformed
        if batching == "mid-batch":
            assert "in the record batch of an undecodable one at offset 1" in got[2].malformed
        receivers[0].ack(got[1])  # past good-1 and the bad one, not the third
        receivers.pop().close()
        assert [e.id for e in read(1)] == [got[2].id]  # the third again, and nothing more
    finally:
        for receiver in receivers:
            receiver.close()
        streamer.close()


def test_a_header_name_not_utf8_is_counted_and_the_consumer_keeps_serving(kafka_broker, kafka_prefix, tmp_path):
    """A message kafka-python cannot decode ahead of a run: counted as malformed, skipped; that run and a
    later one (behind a second such message) complete: the consumer is not stuck on it."""
    from prometheus_client import CollectorRegistry

    from actorflow.adapters.kafka import KafkaEventStreamer
    from actorflow.adapters.sqlite import SqliteRecordStore

    b = af.Builder("badname", Obj, S)
    b.add_step(S.A, lambda run: S.B, S.B)
    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=1)  # one partition: the bad one comes first
    store = SqliteRecordStore(tmp_path / "badname.db")
    registry = CollectorRegistry()
    topic = f"{kafka_prefix}badname-1"
    labels = {"workflow_name": "badname", "process_name": "a-consumer-1-of-1"}
    try:
        wf = b.build(streamer, store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
        streamer.ensure_topic("badname-1")
        produce_undecodable_header_name(kafka_broker, topic)
        first = wf.trigger("after-bad-1", Obj())
        with af.Supervisor([wf], registry=registry):
            wf.await_status("after-bad-1", first, S.B, timeout=15)
            assert registry.get_sample_value("actorflow_malformed_events_total", labels) == 1
            produce_undecodable_header_name(kafka_broker, topic)
            second = wf.trigger("after-bad-2", Obj())
            wf.await_status("after-bad-2", second, S.B, timeout=15)
            # The run may finish first: this node hands its own trigger's event to the consumer.
            eventually(
                lambda: registry.get_sample_value("actorflow_malformed_events_total", labels) == 2,
                what="the second unreadable message counted",
            )
    finally:
        streamer.close()
        store.close()
