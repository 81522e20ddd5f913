"""Local copies: this process's messages reach its own readers once the broker acknowledged them.

The broker's copy of each such message still comes, later, and is dropped: every offset of a
partition is handed out once, in order, whichever copy came first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from actorflow.event import Header
from tests.waiting import eventually

from .test_kafka_streamer import collect, event_partition, send

pytestmark = pytest.mark.kafka

PARTITIONS = 4


@pytest.fixture
def warm(make: Any, receivers: list[Any]) -> Iterator[tuple[Any, Any]]:
    """A streamer and a receiver that has read one message of every partition from the broker.

    Until a partition's first message is read, the reader does not know which offset comes
    next there (a new group starts at the beginning), so local copies wait for that.
    """
    streamer = make(partitions=PARTITIONS)
    receiver = streamer.new_receiver("local", "local-group")
    receivers.append(receiver)
    run_ids = [f"warm-{i}" for i in range(40)]
    send(streamer, "local", run_ids)
    first = collect(receiver, len(run_ids))
    assert {event_partition(e) for e in first} == set(range(PARTITIONS))
    receiver.ack(first[-1])
    yield streamer, receiver


def _drained(receiver: Any) -> bool:
    """True once the broker's copies of every locally handed message came (and were dropped)."""
    assert receiver.receive(100, 0.05) == [], "a broker copy was handed out again"
    return not receiver._reader._handed_locally  # noqa: SLF001 - the test looks at what is still expected


def test_a_flushed_message_is_in_the_readers_hands_at_once_and_only_once(warm):
    """Right after the flush, a poll that does not wait returns every message; the broker's copies never surface."""
    streamer, receiver = warm
    run_ids = [f"run-{i}" for i in range(30)]
    sender = streamer.new_sender("local")
    for batch in (run_ids[:10], run_ids[10:]):
        for run_id in batch:
            sender.send(run_id, 3, {Header.TOPIC: "local", Header.RUN_ID: run_id})
        sender.flush()

    got = receiver.receive(100, 0.0)  # no wait: only local copies can be here already
    assert sorted(e.run_id for e in got) == sorted(run_ids)
    by_partition: dict[int, list[int]] = {}
    for event in got:
        by_partition.setdefault(event_partition(event), []).append(event.id)
    assert all(ids == sorted(ids) for ids in by_partition.values())
    receiver.ack(got[-1])
    eventually(lambda: _drained(receiver), timeout=10, what="the broker's copies, dropped")


def test_a_reader_made_again_resumes_after_what_was_acknowledged_from_local_copies(warm, receivers):
    """The offsets acknowledged from local copies are committed: a new reader of the group starts after them."""
    streamer, receiver = warm
    send(streamer, "local", ["a", "b", "c"])
    got = collect(receiver, 3)
    receiver.ack(got[-1])
    receiver.close()
    receivers.remove(receiver)

    again = streamer.new_receiver("local", "local-group")
    receivers.append(again)
    send(streamer, "local", ["d"])
    assert [e.run_id for e in collect(again, 2, timeout=2)] == ["d"]


def test_a_broker_copy_unlike_its_local_copy_is_handed_out_and_local_copies_stop(warm, caplog):
    """Should the broker hold another message at an acknowledged offset, the broker's is trusted from then on."""
    from actorflow.adapters.kafka._reader import Offered

    streamer, receiver = warm
    reader = receiver._reader  # noqa: SLF001 - forging a copy is the only way to make the offsets disagree
    partition = event_partition(send_one(streamer, receiver, "probe"))
    offset = reader._next[partition]  # noqa: SLF001
    topic = reader._topic  # noqa: SLF001
    forged = Offered(topic, partition, offset, b"forged", b"3", ((Header.TOPIC, b"local"),), 0)
    reader.offer([forged])
    assert [e.run_id for e in receiver.receive(10, 0.0)] == ["forged"]

    with caplog.at_level(logging.ERROR, logger="actorflow.kafka"):
        real = [run_id for run_id in (f"p-{i}" for i in range(200)) if _partition_of(run_id) == partition][:1]
        send(streamer, "local", real)
        got = collect(receiver, 1)
    assert [e.run_id for e in got] == real  # the broker's message at that offset, handed out after all
    assert "holds another message than the broker acknowledged" in caplog.text
    send(streamer, "local", real)
    assert [e.run_id for e in collect(receiver, 1)] == real
    assert not reader._handed_locally  # noqa: SLF001 - it came from the broker: no local copy is used any more


def send_one(streamer: Any, receiver: Any, run_id: str) -> Any:
    send(streamer, "local", [run_id])
    (event,) = collect(receiver, 1)
    receiver.ack(event)
    return event


def _partition_of(run_id: str) -> int:
    from actorflow.event import shard_hash

    return shard_hash(run_id) % PARTITIONS
