"""KafkaConnector: messages produced to an external topic drive workflow runs."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.event import shard_of
from actorflow.processes.connector import connector_key
from actorflow.protocols import ReceiverOptions
from actorflow.testing import require
from tests.kafka_fixtures import raw_producer

pytestmark = pytest.mark.kafka


class Status(enum.IntEnum):
    RECEIVED = 1
    DONE = 2


@dataclasses.dataclass
class Signup:
    customer: str = ""
    plan: str = ""


class Handled:
    """Connector events handled, by event id (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: list[str] = []

    def add(self, event_id: str) -> None:
        with self.lock:
            self.ids.append(event_id)

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.ids)


def wait_for(condition: Any, timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {timeout}s")
        time.sleep(0.01)


@pytest.fixture
def external(kafka_broker: str, kafka_prefix: str) -> Iterator[Any]:
    """``external(partitions)``: a new external topic's name."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    count = iter(range(1000))

    def make(partitions: int) -> str:
        topic = f"{kafka_prefix}crm-signups-{next(count)}"
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}})
        return topic

    yield make
    admin.close()


def produce(servers: str, topic: str, signups: list[tuple[str, str]], *, crc32_partitions: int = 0) -> None:
    """Signups as JSON bodies keyed by customer (kafka's own partitioner unless crc32_partitions is given)."""
    with raw_producer(servers) as producer:
        for customer, plan in signups:
            key = customer.encode()
            partition = zlib.crc32(key) % crc32_partitions if crc32_partitions else None
            body = json.dumps({"plan": plan}).encode()
            producer.send(topic, key=key, value=body, headers=[("type", b"signup")], partition=partition)
        producer.flush()


def workflow(connector: Any, handled: Handled, *, parallel_count: int = 1) -> af.Workflow[Signup, Status]:
    """Each connector event triggers a run for its foreign id (the customer); RECEIVED -> DONE."""
    b = af.Builder("signups", Signup, Status)
    b.add_step(Status.RECEIVED, lambda run: Status.DONE, Status.DONE)

    def on_event(api: af.Workflow[Signup, Status], event: af.ConnectorEvent) -> None:
        handled.add(event.id)
        api.trigger(event.foreign_id, Signup(customer=event.foreign_id, plan=event.headers.get("plan", "")))

    b.add_connector("crm", connector, on_event).with_options(parallel_count=parallel_count)
    defaults = af.Options(polling_frequency=0.05, err_backoff=0.05)
    return b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), defaults=defaults)


def with_plan(message: Any) -> af.ConnectorEvent:
    """A translator of our own: the default event, plus the body's plan as a header."""
    from actorflow.adapters.kafka import default_translate

    event = default_translate(message)
    plan = json.loads(message.value)["plan"]
    return dataclasses.replace(event, headers={**event.headers, "plan": plan})


@pytest.mark.parametrize("crc32_partitioned", [False, True], ids=["any-partitioner", "crc32-partitioned"])
def test_messages_on_an_external_topic_start_runs_each_handled_once(kafka_broker, external, crc32_partitioned):
    """Every message of a 4-partition topic triggers one run over 2 connector shards, which completes."""
    from actorflow.adapters.kafka import KafkaConnector

    topic = external(4)
    signups = [(f"customer-{i}", "gold" if i % 2 else "basic") for i in range(24)]
    produce(kafka_broker, topic, signups, crc32_partitions=4 if crc32_partitioned else 0)
    connector = KafkaConnector(kafka_broker, topic, with_plan, crc32_partitioned=crc32_partitioned)
    handled = Handled()
    wf = workflow(connector, handled, parallel_count=2)
    wf.run()
    try:
        for customer, plan in signups:
            require(wf, customer, Status.DONE, Signup(customer=customer, plan=plan), timeout=10)
    finally:
        wf.stop()
    ids = handled.snapshot()
    assert len(ids) == len(signups) == len(set(ids))


def test_a_partitioned_shard_handles_its_partitions_whatever_foreign_id_the_translator_gives(kafka_broker, external):
    """crc32_partitioned: events whose foreign id is not the key are not dropped by the core's re-filter."""
    from actorflow.adapters.kafka import KafkaConnector

    def account(customer: str) -> str:
        # Not a CRC-affine renaming (a fixed prefix would keep crc32's low bits related).
        return "account-" + hashlib.sha256(customer.encode()).hexdigest()[:12]

    def renamed(message: Any) -> af.ConnectorEvent:
        event = with_plan(message)
        return dataclasses.replace(event, foreign_id=account(event.foreign_id))

    topic = external(4)
    signups = [(f"customer-{i}", "gold") for i in range(24)]
    moved = [c for c, _ in signups if shard_of(account(c), 2) != zlib.crc32(c.encode()) % 4 % 2]
    assert len(moved) >= 4, "the test needs events whose foreign id belongs to the other shard"
    produce(kafka_broker, topic, signups, crc32_partitions=4)
    handled = Handled()
    wf = workflow(KafkaConnector(kafka_broker, topic, renamed, crc32_partitioned=True), handled, parallel_count=2)
    wf.run()
    try:
        for customer, plan in signups:
            name = account(customer)
            require(wf, name, Status.DONE, Signup(customer=name, plan=plan), timeout=10)
    finally:
        wf.stop()
    ids = handled.snapshot()
    assert len(ids) == len(signups) == len(set(ids))


def test_a_crc32_partitioned_topic_gives_each_shard_only_its_partitions(kafka_broker, external):
    """With crc32_partitioned, shard i of 2 reads partitions p % 2 == i: exactly the core's share."""
    from actorflow.adapters.kafka import KafkaConnector

    topic = external(4)
    customers = [f"customer-{i}" for i in range(30)]
    produce(kafka_broker, topic, [(c, "basic") for c in customers], crc32_partitions=4)
    connector = KafkaConnector(kafka_broker, topic, crc32_partitioned=True)
    for shard in range(2):
        consumer = connector.make(f"crm-{shard}", ReceiverOptions(shard=shard, shard_count=2))
        try:
            want = sorted(c for c in customers if shard_of(c, 2) == shard)
            got: list[af.ConnectorEvent] = []
            deadline = time.monotonic() + 5
            while len(got) < len(want) and time.monotonic() < deadline:
                got.extend(consumer.receive(100, 1.0))
            assert sorted(e.foreign_id for e in got) == want
            assert all(shard_of(connector_key(e), 2) == shard for e in got)
            assert consumer.receive(100, 0.2) == []
        finally:
            consumer.close()


def test_the_default_translation(kafka_broker, external):
    """Key -> foreign id, "<partition>-<offset>" -> id, headers decoded, `type` header -> type, timestamp -> created_at."""
    from actorflow.adapters.kafka import KafkaConnector

    topic = external(1)
    produce(kafka_broker, topic, [("customer-1", "gold")])
    consumer = KafkaConnector(kafka_broker, topic).make("reader", ReceiverOptions())
    try:
        (event,) = consumer.receive(10, 5.0)
    finally:
        consumer.close()
    assert (event.id, event.foreign_id, event.type) == ("0-0", "customer-1", "signup")
    assert event.headers == {"type": "signup"}
    assert event.created_at is not None
    assert event.created_at.tzinfo is not None


def test_a_connector_resumes_from_its_committed_offsets(kafka_broker, external):
    """Stopped and run again, the connector handles only the messages that came meanwhile, each once."""
    from actorflow.adapters.kafka import KafkaConnector

    topic = external(2)
    produce(kafka_broker, topic, [(f"first-{i}", "basic") for i in range(5)])
    handled = Handled()
    wf = workflow(KafkaConnector(kafka_broker, topic, with_plan), handled)
    wf.run()
    try:
        wait_for(lambda: len(handled.snapshot()) == 5, what="the first five messages handled")
    finally:
        wf.stop()
    produce(kafka_broker, topic, [(f"second-{i}", "gold") for i in range(3)])
    wf.run()
    try:
        for i in range(3):
            require(wf, f"second-{i}", Status.DONE, Signup(customer=f"second-{i}", plan="gold"))
    finally:
        wf.stop()
    ids = handled.snapshot()
    assert len(ids) == 8 == len(set(ids))


def test_messages_the_translator_rejects_are_logged_and_skipped(kafka_broker, external, caplog):
    """A translator returning None skips a message; one that raises hands it over as malformed."""
    from actorflow.adapters.kafka import KafkaConnector, default_translate

    def picky(message: Any) -> af.ConnectorEvent | None:
        if message.key == b"ignored":
            return None
        if message.key == b"broken":
            msg = "cannot read this one"
            raise ValueError(msg)
        return default_translate(message)

    topic = external(1)
    produce(kafka_broker, topic, [("ignored", "x"), ("broken", "x"), ("customer-1", "x")])
    consumer = KafkaConnector(kafka_broker, topic, picky).make("reader", ReceiverOptions())
    try:
        with caplog.at_level(logging.ERROR, logger="actorflow.kafka"):
            got = consumer.receive(10, 5.0)
            while not got:
                got = consumer.receive(10, 5.0)
        while len(got) < 2:
            got.extend(consumer.receive(10, 5.0))
        assert [(e.foreign_id, e.malformed) for e in got] == [
            ("broken", "ValueError: cannot read this one"),
            ("customer-1", ""),
        ]
        assert got[0].id == "0-1"
        assert "offset 1 cannot be translated" in caplog.text
    finally:
        consumer.close()


def test_a_malformed_connector_message_is_counted_and_the_next_ones_handled(kafka_broker, external):
    """Through the engine: the untranslatable message is counted and skipped, the runs after it complete."""
    from prometheus_client import CollectorRegistry

    from actorflow.adapters.kafka import KafkaConnector

    def strict(message: Any) -> af.ConnectorEvent:
        if message.key == b"broken":
            msg = "cannot read this one"
            raise ValueError(msg)
        return with_plan(message)

    topic = external(1)
    produce(kafka_broker, topic, [("broken", "x"), ("customer-1", "gold"), ("customer-2", "basic")])
    handled = Handled()
    wf = workflow(KafkaConnector(kafka_broker, topic, strict), handled)
    registry = CollectorRegistry()
    with af.Supervisor([wf], registry=registry):
        require(wf, "customer-1", Status.DONE, Signup(customer="customer-1", plan="gold"), timeout=10)
        require(wf, "customer-2", Status.DONE, Signup(customer="customer-2", plan="basic"), timeout=10)
    labels = {"workflow_name": wf.name, "process_name": "crm-connector-to-signups-consumer-1-of-1"}
    assert registry.get_sample_value("actorflow_malformed_events_total", labels) == 1
    skipped = registry.get_sample_value(
        "workflow_process_skipped_events_count", {**labels, "reason": "malformed event"}
    )
    assert skipped == 1
    assert sorted(handled.snapshot()) == ["0-1", "0-2"]


def test_a_missing_topic_is_a_clear_error(kafka_broker, kafka_prefix):
    """A connector on a topic that does not exist says so when a shard starts."""
    from actorflow.adapters.kafka import KafkaConnector, KafkaError

    with pytest.raises(KafkaError, match="does not exist"):
        KafkaConnector(kafka_broker, f"{kafka_prefix}nowhere").make("reader", ReceiverOptions())
