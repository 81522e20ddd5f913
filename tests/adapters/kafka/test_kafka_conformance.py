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
    """Every case, unchanged, on one-partition topics.

    Several cases expect one order across runs (``run-0`` .. ``run-4`` as sent), which
    Kafka gives within a partition only. Shards then read the one partition and filter.
    """

    @pytest.fixture
    def make_event_streamer(self, kafka_broker: str, kafka_prefix: str) -> Iterator[Callable[..., Any]]:
        yield from _streamers(kafka_broker, kafka_prefix, partitions=1)


class TestKafkaEventStreamerPartitioned(EventStreamerSuite):
    """Every case on 12-partition topics (the default); shards read only their partitions.

    The three cases that expect one order across runs are restated here with what Kafka
    promises instead: order per run (per partition), the same events, the same ids.
    """

    @pytest.fixture
    def make_event_streamer(self, kafka_broker: str, kafka_prefix: str) -> Iterator[Callable[..., Any]]:
        yield from _streamers(kafka_broker, kafka_prefix, partitions=12)

    def test_receiver_resumes_after_the_last_acked_event(self, make_event_streamer, streams):
        """A receiver re-created under the same name gets again exactly the events after the last ack."""
        streamer = make_event_streamer()
        sender = streams.sender(streamer, "resume")
        _send(sender, "resume", [f"run-{i}" for i in range(5)])

        receiver = streams.receiver(streamer, "resume", "resumer")
        events = _collect(receiver, 5)
        assert sorted(e.run_id for e in events) == [f"run-{i}" for i in range(5)]
        receiver.ack(events[0])
        receiver.ack(events[1])
        streams.close(receiver)

        again = streams.receiver(streamer, "resume", "resumer")
        redelivered = _collect(again, 3)
        assert sorted((e.id, e.run_id) for e in redelivered) == sorted((e.id, e.run_id) for e in events[2:])
        assert again.receive(10, 0.2) == []

    def test_ack_is_cumulative(self, make_event_streamer, streams):
        """Acking an event commits, on every partition, the events delivered before it."""
        streamer = make_event_streamer()
        sender = streams.sender(streamer, "cumulative")
        _send(sender, "cumulative", [f"run-{i}" for i in range(5)])

        receiver = streams.receiver(streamer, "cumulative", "acker")
        events = _collect(receiver, 5)
        assert len(events) == 5
        receiver.ack(events[3])
        streams.close(receiver)

        again = streams.receiver(streamer, "cumulative", "acker")
        assert [e.id for e in _collect(again, 1)] == [events[4].id]
        assert again.receive(10, 0.2) == []

    def test_receivers_with_different_names_each_get_every_event(self, make_event_streamer, streams):
        """Cursors are per name: two names each receive the whole topic, spread over partitions."""
        streamer = make_event_streamer()
        first = streams.receiver(streamer, "fan-out", "first")
        second = streams.receiver(streamer, "fan-out", "second")
        sender = streams.sender(streamer, "fan-out")
        run_ids = [f"run-{i}" for i in range(10)]
        _send(sender, "fan-out", run_ids)

        for receiver in (first, second):
            events = _collect(receiver, 10)
            assert sorted(e.run_id for e in events) == sorted(run_ids)
            assert len({e.id % 65536 for e in events}) > 1, "the runs should spread over partitions"
            receiver.ack(events[-1])


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
