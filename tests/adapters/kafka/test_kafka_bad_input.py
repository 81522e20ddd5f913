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
