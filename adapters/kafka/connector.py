"""`KafkaConnector`: an external Kafka topic as a workflow connector's stream.

Each message is turned into a `ConnectorEvent` by a translator (the original's
``Translator``); offsets are committed per connector shard (the consumer's name) after
the connector function handled the events, as for workflow topics.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from actorflow.event import ConnectorEvent
from actorflow.protocols import ReceiverOptions

from ._client import Clients, KafkaError
from ._reader import PartitionReader, Unreadable, shard_partitions

__all__ = ["KafkaConnector", "Message", "default_translate"]

logger = logging.getLogger("actorflow.kafka")


class Message(Protocol):
    """What a translator receives: a kafka-python ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


Translate = Callable[[Message], "ConnectorEvent | None"]
"""Turns a message into a connector event, or None to skip the message."""


def default_translate(message: Message) -> ConnectorEvent:
    """The event of a message: key -> foreign id, ``"<partition>-<offset>"`` -> id.

    Headers are decoded as UTF-8 (undecodable bytes replaced); the ``type`` header, if
    any, becomes the event's type; the timestamp becomes ``created_at``. The body is not
    carried: give `KafkaConnector` a translator of your own to use it.
    """
    headers = {name: (raw or b"").decode(errors="replace") for name, raw in message.headers or ()}
    created_at = None
    if message.timestamp is not None and message.timestamp >= 0:
        created_at = datetime.fromtimestamp(message.timestamp / 1000, UTC)
    return ConnectorEvent(
        id=f"{message.partition}-{message.offset}",
        foreign_id=(message.key or b"").decode(errors="replace"),
        type=headers.get("type", ""),
        headers=headers,
        created_at=created_at,
    )


class KafkaConnector:
    """A `ConnectorConstructor` reading an existing Kafka topic.

    Each connector shard commits its offsets under its own name (a consumer group id)
    and resumes from them. The core gives a connector event to shard
    ``shard_of(foreign_id or id, n)`` (the original hashes the event id with FNV; the
    foreign id keeps one entity's events in order on one shard); a shard normally reads
    every partition and the core drops the other shards' events. When the topic's
    producer put each message on partition ``zlib.crc32(key) % partitions`` (as
    `KafkaEventStreamer` does), say so with ``crc32_partitioned``: a shard then reads
    only its own partitions (if their count is a multiple of n) and handles every event
    on them.

    Args:
        bootstrap_servers: ``"host:port"``, comma-separated hosts, or a list of them.
        topic: the external topic (not prefixed, not created: it must exist).
        translate: ``message -> ConnectorEvent`` (None skips the message); default
            `default_translate`. A message it raises on is logged, counted as a
            malformed event and skipped.
        client_options: kafka-python settings for every client (security options...).
        crc32_partitioned: the topic is partitioned by ``crc32(key)``, see above.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic: str,
        translate: Translate | None = None,
        *,
        client_options: Mapping[str, Any] | None = None,
        crc32_partitioned: bool = False,
    ) -> None:
        if not topic:
            msg = "topic must name the external topic to read"
            raise ValueError(msg)
        self.clients = Clients(bootstrap_servers, client_options or {})
        self.topic = topic
        self.translate: Translate = translate or default_translate
        self.crc32_partitioned = crc32_partitioned

    def make(self, name: str, options: ReceiverOptions) -> _Consumer:
        """A consumer for one connector shard, its offsets committed under group ``name``."""
        # A short-lived admin client per consumer: connectors are not attached to a
        # supervisor, so nothing shared may outlive the consumers (which close() ends).
        clients = Clients(self.clients.servers, self.clients.options)
        try:
            count = clients.partition_count(self.topic)
            if count is None:
                msg = f"the connector's topic {self.topic} does not exist on {clients.servers}"
                raise KafkaError(msg, topic=self.topic)
            assigned = None
            if self.crc32_partitioned:
                assigned = shard_partitions(count, options.shard, options.shard_count)
            if assigned is None:
                assigned = list(range(count))  # the core keeps this shard's events
            reader = PartitionReader(
                clients,
                self.topic,
                name,
                assigned,
                from_latest=options.stream_from_latest,
                max_wait=options.poll_frequency,
            )
        finally:
            clients.close()
        return _Consumer(reader, self.translate, partitioned=self.crc32_partitioned and len(assigned) < count)


class _Consumer:
    def __init__(self, reader: PartitionReader, translate: Translate, *, partitioned: bool) -> None:
        self._reader = reader
        self._translate = translate
        self._partitioned = partitioned
        # Events handed out, with their message's position, in delivery order.
        self._delivered: collections.deque[tuple[ConnectorEvent, int, int]] = collections.deque()

    def receive(self, max_events: int, timeout: float) -> Sequence[ConnectorEvent]:
        events: list[ConnectorEvent] = []
        for message in self._reader.poll(max_events, timeout):
            if isinstance(message, Unreadable):  # kafka-python could not decode it: counted, moved past
                bad = ConnectorEvent(
                    id=f"{message.partition}-{message.offset}", foreign_id="", malformed=message.reason
                )
                self._delivered.append((bad, message.partition, message.offset))
                events.append(bad)
                continue
            try:
                event = self._translate(message)
            except Exception as exc:
                logger.exception(
                    "connector topic %s: message at partition %d offset %d cannot be translated; skipped",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                # Handed over as malformed: the connector process counts it and moves past it.
                key = message.key.decode(errors="replace") if message.key else ""
                event = ConnectorEvent(
                    id=f"{message.partition}-{message.offset}", foreign_id=key, malformed=f"{type(exc).__name__}: {exc}"
                )
            if event is None:
                continue
            self._delivered.append((event, message.partition, message.offset))
            events.append(event)
        return events

    def partitioned(self) -> bool:
        """True when this shard reads only its own partitions (the core must not re-filter)."""
        return self._partitioned

    def ack(self, event: ConnectorEvent) -> None:
        # Identity, not equality: a translator may give two messages equal events.
        if not any(delivered is event for delivered, _, _ in self._delivered):
            return
        while self._delivered:
            delivered, partition, offset = self._delivered.popleft()
            if delivered is event:
                self._reader.ack(partition, offset)
                return

    def close(self) -> None:
        self._delivered.clear()
        self._reader.close()
