"""`Handoff`: the events of this engine's own writes, handed to its own step consumers at once.

When a store cannot publish its events itself, an event reaches a consumer through the
outbox relay and the event streamer: on Kafka a hop (relay woken, produce acknowledged,
fetch answered) cost about 11.5 ms, most of a run's latency. Yet the node that committed
a record often holds the consumer of its next step. The `Writer` hands each committed
record's event to that consumer here, right after the commit; the streamer's copy still
comes, and the consumer drops whichever of the two copies comes second (by run and
version). Nothing is acknowledged for a handed event: the streamer's copy moves the
cursor, so a crash before either is handled loses nothing (the relay's row is durable,
its copy is read again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from actorflow.event import Event, event_headers, event_topic, shard_of

if TYPE_CHECKING:
    from actorflow.record import Record

__all__ = ["HANDED_EVENT_ID", "Handoff"]

# The id of every handed event: no streamer gives it (ids are positions, never negative).
HANDED_EVENT_ID = -1


class _Subscriber:
    __slots__ = ("deliver", "shard", "shard_count")

    def __init__(self, shard: int, shard_count: int, deliver: Callable[[Event], None]) -> None:
        self.shard = shard
        self.shard_count = shard_count
        self.deliver = deliver


class Handoff:
    """The consumers of each topic that take their engine's events straight from its writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, tuple[_Subscriber, ...]] = {}

    def subscribe(self, topic: str, shard: int, shard_count: int, deliver: Callable[[Event], None]) -> object:
        """Hand ``topic``'s events of this shard to ``deliver`` from now on; the token to `unsubscribe` with.

        ``deliver`` runs on the committing thread: it must be quick.
        """
        subscriber = _Subscriber(shard, shard_count, deliver)
        with self._lock:
            self._topics[topic] = (*self._topics.get(topic, ()), subscriber)
        return subscriber

    def unsubscribe(self, token: object) -> None:
        """Stop handing events to the subscriber ``token`` names."""
        with self._lock:
            for topic, subscribers in list(self._topics.items()):
                left = tuple(s for s in subscribers if s is not token)
                if left:
                    self._topics[topic] = left
                else:
                    del self._topics[topic]

    def subscribers(self, topic: str) -> int:
        """How many consumers take ``topic``'s events from here now."""
        return len(self._topics.get(topic, ()))

    def publish(self, record: Record) -> None:
        """Hand the event of a just-committed ``record`` to its shard's subscriber (free when none)."""
        if not self._topics:
            return
        subscribers = self._topics.get(event_topic(record))
        if not subscribers:
            return
        event: Event | None = None
        for subscriber in subscribers:
            if subscriber.shard_count > 1 and shard_of(record.run_id, subscriber.shard_count) != subscriber.shard:
                continue
            if event is None:
                event = Event(HANDED_EVENT_ID, record.run_id, record.status, event_headers(record), record.updated_at)
            subscriber.deliver(event)
