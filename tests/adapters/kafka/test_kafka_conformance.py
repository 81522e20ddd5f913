"""The Kafka adapters pass the event streamer and connector conformance suites on a real broker."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from actorflow.event import ConnectorEvent, Header
from actorflow.testing.adaptertest import ConnectorSuite, EventStreamerSuite

pytestmark = pytest.mark.kafka


def _send(sender: Any, topic: str, run_ids: list[str]) -> None:
    for run_id in run_ids:
        sender.send(run_id, 5, {Header.TOPIC: topic})
    sender.flush()


def _collect(receiver: Any, count: int, timeout: float = 5.0) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        out.extend(receiver.receive(count - len(out), max(0.0, deadline - time.monotonic())))
    return out


def _streamers(servers: str, prefix: str, partitions: int) -> Iterator[Callable[..., Any]]:
    """Streamers on the test's own topic prefix (several calls = several processes); closed after."""
    from actorflow.adapters.kafka import KafkaEventStreamer

    made: list[KafkaEventStreamer] = []

    def make(**kwargs: Any) -> KafkaEventStreamer:
        streamer = KafkaEventStreamer(servers, prefix, partitions=partitions, **kwargs)
        made.append(streamer)
        return streamer

    yield make
    for streamer in made:
        streamer.close()


class TestKafkaEventStreamer(EventStreamerSuite):
    """Every case, unchanged, on 12-partition topics (the default): shards read only their partitions."""

    @pytest.fixture
    def make_event_streamer(self, kafka_broker: str, kafka_prefix: str) -> Iterator[Callable[..., Any]]:
        yield from _streamers(kafka_broker, kafka_prefix, partitions=12)


def _translate(message: Any) -> ConnectorEvent:
    """The suite's events travel as key = foreign id, header ``id`` = event id."""
    headers = {name: (value or b"").decode() for name, value in message.headers}
    return ConnectorEvent(id=headers["id"], foreign_id=message.key.decode(), headers=headers)


class TestKafkaConnector(ConnectorSuite):
    @pytest.fixture
    def make_connector(self, kafka_broker: str, kafka_prefix: str) -> Callable[[Sequence[ConnectorEvent]], Any]:
        """A fresh one-partition external topic holding the events (one partition: the suite checks order)."""
        from kafka import KafkaAdminClient, KafkaProducer

        from actorflow.adapters.kafka import KafkaConnector

        counter = itertools.count()

        def make(events: Sequence[ConnectorEvent]) -> KafkaConnector:
            topic = f"{kafka_prefix}external-{next(counter)}"
            admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
            producer = KafkaProducer(bootstrap_servers=kafka_broker)
            try:
                admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
                for event in events:
                    producer.send(
                        topic, key=event.foreign_id.encode(), value=b"{}", headers=[("id", event.id.encode())]
                    )
                producer.flush()
            finally:
                producer.close()
                admin.close()
            return KafkaConnector(kafka_broker, topic, _translate)

        return make
