"""Events another producer placed: sharded consumers handle every event, whatever partitioner put it where.

A Go service on luno/workflow publishes with sarama, whose default partitioner is FNV-1a
of the key; a plain kafka-python producer uses murmur2. Neither matches our
``crc32(run_id) % partitions``, so their events sit on partitions whose shard is not
``shard_of(run_id)``. A shard reading only its own partitions must handle them all.
"""

from __future__ import annotations

import dataclasses
import enum
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRecordStore, MemoryRoleScheduler
from actorflow.event import shard_of
from tests.kafka_fixtures import raw_producer, read_all

pytestmark = pytest.mark.kafka

SHARDS = 2
MISPLACED = 8  # runs at least whose partition belongs to another shard than shard_of(run_id)


class Status(enum.IntEnum):
    TODO = 1
    DONE = 2


@dataclasses.dataclass
class Job:
    n: int = 0


def fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def sarama_partition(key: bytes, partitions: int) -> int:
    """sarama's default (hash) partitioner: ``int32(fnv1a(key)) % n``, negated when negative (Go's %)."""
    h = fnv1a_32(key)
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return abs(signed) % partitions  # Go's % truncates toward zero; the sign is then dropped


def murmur2_partition(key: bytes, partitions: int) -> int:
    """kafka-python's (and the Java client's) default partitioner."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


PARTITIONERS: dict[str, Callable[[bytes, int], int]] = {
    "sarama-fnv1a": sarama_partition,
    "kafka-python-murmur2": murmur2_partition,
}


def misplaced(run_ids: list[str], place: Callable[[bytes, int], int], partitions: int) -> list[str]:
    """The runs whose partition is read by another shard than the one crc32 would give them."""
    return [r for r in run_ids if place(r.encode(), partitions) % SHARDS != shard_of(r, SHARDS)]


@pytest.mark.parametrize("partitions", [4, 3], ids=["4-partitions-assigned", "3-partitions-fallback"])
@pytest.mark.parametrize("partitioner", sorted(PARTITIONERS))
def test_sharded_consumers_handle_events_another_producer_placed(kafka_broker, kafka_prefix, partitioner, partitions):
    """A 2-shard step completes every run whose event a foreign producer put on any partition.

    With 4 partitions each shard reads its own two (p % 2 == i) and handles every event on
    them; with 3 (not a multiple of 2) each shard reads all three and keeps shard_of(run_id).
    The events are the outbox rows, published by a plain kafka-python producer with sarama's
    or kafka-python's partitioner instead of the relay; several land on the "wrong" shard.
    """
    from actorflow.adapters.kafka import KafkaEventStreamer

    place = PARTITIONERS[partitioner]
    b = af.Builder("interop", Job, Status)
    b.add_step(Status.TODO, lambda run: Status.DONE, Status.DONE).with_options(parallel_count=SHARDS)
    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=partitions)
    store = MemoryRecordStore()
    wf = b.build(streamer, store, MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.05))

    # Runs are triggered before anything runs: their first events wait in the outbox.
    runs: dict[str, str] = {}
    while len(misplaced(list(runs.values()), place, partitions)) < MISPLACED:
        foreign_id = f"job-{len(runs)}"
        runs[foreign_id] = wf.trigger(foreign_id)
    assert len(runs) < 200  # about half the runs are misplaced

    # A foreign relay publishes them: same wire format, its own partitioner.
    topic = f"{wf.name}-{int(Status.TODO)}"
    assert streamer.ensure_topic(topic) == partitions
    rows = store.list_outbox_events(wf.name, 1000)
    assert len(rows) == len(runs)
    with raw_producer(kafka_broker) as producer:
        for row in rows:
            key = row.run_id.encode()
            producer.send(
                streamer.kafka_topic(row.topic),
                key=key,
                value=str(row.type).encode(),
                headers=[(name, value.encode()) for name, value in row.headers.items()],
                partition=place(key, partitions) if partitioner == "sarama-fnv1a" else None,  # None: murmur2
            )
        producer.flush()
    for row in rows:
        store.delete_outbox_event(row.id)
    on_topic = read_all(kafka_broker, streamer.kafka_topic(topic), partitions)
    assert {m.key.decode(): m.partition for m in on_topic} == {r: place(r.encode(), partitions) for r in runs.values()}
    assert any(m.partition != zlib.crc32(m.key) % partitions for m in on_topic)

    wf.run()
    try:
        deadline = time.monotonic() + 30
        for foreign_id, run_id in runs.items():
            wf.await_status(foreign_id, run_id, Status.DONE, timeout=max(0.1, deadline - time.monotonic()))
    finally:
        wf.stop()
        streamer.close()


def test_a_receiver_says_whether_it_reads_only_its_partitions(kafka_broker, kafka_prefix):
    """partitioned() is True when the shard's partitions are its whole share (the consumer must not re-filter)."""
    from actorflow.adapters.kafka import KafkaEventStreamer
    from actorflow.capabilities import PartitionedReceiver
    from actorflow.protocols import ReceiverOptions

    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=4)
    opened: list[Any] = []
    try:
        for count, want in ((1, True), (2, True), (4, True), (3, False)):
            receiver = streamer.new_receiver("split", f"r-{count}", ReceiverOptions(shard=0, shard_count=count))
            opened.append(receiver)
            assert isinstance(receiver, PartitionedReceiver)
            assert receiver.partitioned() is want, count
    finally:
        for receiver in opened:
            receiver.close()
        streamer.close()
