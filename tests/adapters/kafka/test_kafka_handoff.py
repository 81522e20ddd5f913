"""On Kafka, a node hands the events of its own writes to its own step consumers (engine/handoff.py).

Each step still runs exactly once, the broker's copies of handed events are dropped, and
the consumers' committed offsets still reach the end of their topics (nothing held back).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.sqlite import SqliteRecordStore
from actorflow.event import topic
from tests.handoff import count_handed
from tests.kafka_fixtures import read_all
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually

pytestmark = pytest.mark.kafka

PARTITIONS = 4
RUNS = 40


def _committed(streamer: Any, group: str, kafka_topic: str) -> dict[int, int]:
    from kafka.structs import TopicPartition

    return streamer.clients.committed(group, [TopicPartition(kafka_topic, p) for p in range(PARTITIONS)])


def _ends(servers: str, kafka_topic: str, count: int) -> dict[int, int] | None:
    """Where each partition of ``kafka_topic`` ends, once it holds ``count`` messages (else None)."""
    ends: dict[int, int] = {}
    messages = read_all(servers, kafka_topic, PARTITIONS)
    for message in messages:
        ends[message.partition] = max(ends.get(message.partition, 0), message.offset + 1)
    return ends if len(messages) >= count else None


def test_steps_take_their_own_nodes_events_run_once_and_the_cursor_still_reaches_the_end(
    kafka_broker, kafka_prefix, tmp_path, monkeypatch
):
    from actorflow.adapters.kafka import KafkaEventStreamer

    taken = count_handed(monkeypatch)
    calls: list[tuple[str, Stage]] = []
    streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, partitions=PARTITIONS)
    store = SqliteRecordStore(str(tmp_path / "records.db"))
    wf = three_steps("handoff", calls=calls).build(streamer, store, MemoryRoleScheduler())
    try:
        with af.Supervisor([wf]):
            steps = [topic("handoff", status) for status in (Stage.STARTED, Stage.FIRST, Stage.SECOND)]
            eventually(lambda: all(wf.engine.handoff.subscribers(t) for t in steps), what="every step consumer up")
            ids = [(f"h-{i}", wf.trigger(f"h-{i}", Item(f"h-{i}"))) for i in range(RUNS)]
            for foreign_id, run_id in ids:
                wf.await_status(foreign_id, run_id, Stage.DONE, timeout=30)

            # Every step once per run: a handed event and its broker copy never both ran.
            assert sorted(collections.Counter(calls).values()) == [1] * (3 * RUNS)
            # Every step takes events from this node's writes (the triggers' and the steps'). A
            # reader idle until then may have been given the broker's copies first (it cannot be
            # woken out of its first wait): it takes the handed ones next, and skips them.
            eventually(lambda: {t for t, n in taken.items() if n} == set(steps), what="handed events taken")

            # The broker copies are consumed too: each step's cursor reaches its topic's end.
            for status in (Stage.STARTED, Stage.FIRST, Stage.SECOND):
                kafka_topic = f"{kafka_prefix}{topic('handoff', status)}"
                group = f"handoff-{int(status)}-consumer-1-of-1"  # the role: its receiver's group
                # The runs may finish before the relay has published every event they made.
                ends = eventually(
                    lambda kt=kafka_topic: _ends(kafka_broker, kt, RUNS), timeout=15, what=f"{kafka_topic} relayed"
                )
                eventually(
                    lambda kt=kafka_topic, g=group, e=ends: _committed(streamer, g, kt) == e,
                    timeout=15,
                    what=f"{group}'s offsets at the end of {kafka_topic}",
                )
    finally:
        store.close()
        streamer.close()
