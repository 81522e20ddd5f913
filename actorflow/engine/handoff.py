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

The record comes with the event, exactly as committed (a store keeps a record as
written; a later write of the run by anyone fails its version check): the consumer
reads nothing before the step. A store that publishes directly (PostgreSQL) hands off
too when it can leave the handed events out of its wake-ups (`LocalWakeups`): its
notification would otherwise make the consumer read the event back first, a round
trip per hop. The twins are then read later, in batches, only to move the cursor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from actorflow.event import Event, event_headers, event_topic, shard_of

if TYPE_CHECKING:
    from actorflow.record import Record

__all__ = ["HANDED_EVENT_ID", "Handoff"]

# The id of every handed event: no streamer gives it (ids are positions, never negative).
HANDED_EVENT_ID = -1
# Promised records (`Handoff.promise`) remembered at most; those of refused commits are never handed.
PROMISE_LIMIT = 10_000
_NOT = object()


class _Subscriber:
    __slots__ = ("deliver", "idle", "shard", "shard_count")

    def __init__(self, shard: int, shard_count: int, deliver: Callable[[Event, Record], None]) -> None:
        self.shard = shard
        self.shard_count = shard_count
        self.deliver = deliver
        self.idle = True  # nothing in hand (see `Handoff.promise`): a plain flag its consumer sets


class Handoff:
    """The consumers of each topic that take their engine's events straight from its writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, tuple[_Subscriber, ...]] = {}
        # With a store that leaves handed events out of its wake-ups: only the records
        # promised (`promise`) are handed, by (run id, version); the others are notified.
        self._promises_only = False
        self._promised: OrderedDict[tuple[str, int], None] = OrderedDict()

    def keep_promises(self) -> None:
        """Hand only the records `promise` said would be (the store notifies the others)."""
        self._promises_only = True

    def subscribe(self, topic: str, shard: int, shard_count: int, deliver: Callable[[Event, Record], None]) -> object:
        """Hand ``topic``'s events of this shard to ``deliver`` from now on; the token to `unsubscribe` with.

        ``deliver(event, record)`` runs on the committing thread: it must be quick. The
        record is the one committed, as a read would find it.
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

    def _takers(self, record: Record) -> list[_Subscriber]:
        """The subscribers of ``record``'s event: of its topic, and of its run's shard."""
        if not self._topics:  # read without the lock: subscribe and unsubscribe replace the tuples whole
            return []
        subscribers = self._topics.get(event_topic(record))
        if not subscribers:
            return []
        return [s for s in subscribers if s.shard_count <= 1 or shard_of(record.run_id, s.shard_count) == s.shard]

    def set_idle(self, token: object, *, idle: bool) -> None:
        """Say whether the subscriber ``token`` names has nothing in hand (it is waiting for events)."""
        if isinstance(token, _Subscriber):
            token.idle = idle

    def promise(self, record: Record) -> bool:
        """Whether ``record``'s event, about to be committed, will be handed over (then nobody need be woken).

        Only to an idle subscriber: one with work in hand reads its events in batches
        from the log (a handed event's twin is read too, so handing it saves nothing).
        """
        if not any(s.idle for s in self._takers(record)):
            return False
        with self._lock:
            self._promised[(record.run_id, record.meta.version)] = None
            if len(self._promised) > PROMISE_LIMIT:  # commits refused since: never handed
                self._promised.popitem(last=False)
        return True

    def publish(self, record: Record) -> None:
        """Hand a just-committed ``record``, and its event, to its shard's subscriber (free when none)."""
        if self._promises_only:
            if not self._promised:
                return
            with self._lock:
                if self._promised.pop((record.run_id, record.meta.version), _NOT) is _NOT:
                    return
        takers = self._takers(record)
        if not takers:
            return
        event = Event(HANDED_EVENT_ID, record.run_id, record.status, event_headers(record), record.updated_at)
        for subscriber in takers:
            subscriber.deliver(event, record)
