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
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from actorflow.event import Event, event_headers, event_topic, shard_of

if TYPE_CHECKING:
    from actorflow.record import Record

__all__ = ["HANDED_EVENT_ID", "Handoff"]

# The id of every handed event: no streamer gives it (ids are positions, never negative).
HANDED_EVENT_ID = -1
# A commit's events handed to one subscriber, each with its record, in commit order.
Handed = list[tuple[Event, "Record"]]
# Events promised to a subscriber each time it goes idle, at most (see `Handoff.promise`).
IDLE_ROOM = 8
# Promised records (`Handoff.promise`) remembered at most; those of refused commits are never handed.
PROMISE_LIMIT = 10_000
_NOT = object()


class _Subscriber:
    __slots__ = ("deliver", "room", "shard", "shard_count")

    def __init__(self, shard: int, shard_count: int, deliver: Callable[[Handed], None]) -> None:
        self.shard = shard
        self.shard_count = shard_count
        self.deliver = deliver
        # Events it may still be promised (`Handoff.promise`): IDLE_ROOM once its consumer
        # says it has nothing in hand, 0 while it has work (changed under the Handoff's lock).
        self.room = 0


class Handoff:
    """The consumers of each topic that take their engine's events straight from its writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, tuple[_Subscriber, ...]] = {}
        # With a store that leaves handed events out of its wake-ups: only the records
        # promised (`promise`) are handed, by (run id, version); the others are notified.
        self._promises_only = False
        self._promised: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._roomy = 0  # subscribers with room for a promise (changed under the lock)
        self._read_elsewhere: frozenset[str] = frozenset()

    def keep_promises(self, *, read_elsewhere: Iterable[str] = ()) -> None:
        """Hand only the records `promise` said would be (the store notifies the others).

        ``read_elsewhere``: topics that other processes read too (a status's timeout
        inserter): never promised, since leaving them out of the notification would keep
        those readers waiting for their poll.
        """
        self._read_elsewhere = frozenset(read_elsewhere)
        self._promises_only = True

    def forget(self, records: Sequence[Record]) -> None:
        """Drop the promises of ``records``, refused by the store (their events were never written)."""
        if self._promised:
            with self._lock:
                for r in records:
                    self._promised.pop((r.run_id, r.meta.version), None)

    def subscribe(self, topic: str, shard: int, shard_count: int, deliver: Callable[[Handed], None]) -> object:
        """Hand ``topic``'s events of this shard to ``deliver`` from now on; the token to `unsubscribe` with.

        ``deliver(handed)`` runs on the committing thread, with a commit's events of this
        shard and their records (as a read would find them), in order: it must be quick.
        """
        subscriber = _Subscriber(shard, shard_count, deliver)
        with self._lock:
            self._topics[topic] = (*self._topics.get(topic, ()), subscriber)
        return subscriber

    def unsubscribe(self, token: object) -> None:
        """Stop handing events to the subscriber ``token`` names."""
        with self._lock:
            if isinstance(token, _Subscriber) and token.room > 0:
                token.room = 0
                self._roomy -= 1
            for topic, subscribers in list(self._topics.items()):
                left = tuple(s for s in subscribers if s is not token)
                if left:
                    self._topics[topic] = left
                else:
                    del self._topics[topic]

    def subscribers(self, topic: str) -> int:
        """How many consumers take ``topic``'s events from here now."""
        return len(self._topics.get(topic, ()))

    def _takers(self, record: Record, where: str) -> list[_Subscriber]:
        """The subscribers of ``record``'s event (its topic ``where``): of that topic, and of its run's shard."""
        subscribers = self._topics.get(where)  # read without the lock: (un)subscribe replace the tuples whole
        if not subscribers:
            return []
        return [s for s in subscribers if s.shard_count <= 1 or shard_of(record.run_id, s.shard_count) == s.shard]

    def set_idle(self, token: object, *, idle: bool) -> None:
        """Say whether the subscriber ``token`` names has nothing in hand (it is waiting for events)."""
        if not isinstance(token, _Subscriber):
            return
        room = IDLE_ROOM if idle else 0
        if token.room == room:  # unchanged (the common case): no lock
            return
        with self._lock:
            if (token.room > 0) != (room > 0):
                self._roomy += 1 if room > 0 else -1
            token.room = room

    def promise(self, record: Record) -> bool:
        """Whether ``record``'s event, about to be committed, will be handed over (then nobody need be woken).

        Only to an idle subscriber, and a few events each time it goes idle: a consumer
        with work in hand reads its events in batches from the log, and a handed event's
        twin is read too, so handing over a backlog saves nothing.
        """
        if self._roomy <= 0:  # read without the lock: the common case of a busy node costs nothing
            return False
        where = event_topic(record)
        if where in self._read_elsewhere:
            return False
        taker = next((s for s in self._takers(record, where) if s.room > 0), None)
        if taker is None:
            return False
        with self._lock:
            if taker.room <= 0:
                return False
            taker.room -= 1
            if taker.room == 0:
                self._roomy -= 1
            self._promised[(record.run_id, record.meta.version)] = None
            if len(self._promised) > PROMISE_LIMIT:  # commits refused since: never handed
                self._promised.popitem(last=False)
        return True

    def publish(self, records: Sequence[Record]) -> None:
        """Hand just-committed ``records``, and their events, to their shards' subscribers (free when none).

        Each subscriber gets its share in one call, in commit order.
        """
        if not self._topics:
            return
        if self._promises_only:
            if not self._promised:
                return
            with self._lock:
                records = [r for r in records if self._promised.pop((r.run_id, r.meta.version), _NOT) is not _NOT]
        shares: dict[int, tuple[_Subscriber, list[tuple[Event, Record]]]] = {}
        for record in records:
            takers = self._takers(record, event_topic(record))
            if not takers:
                continue
            event = Event(HANDED_EVENT_ID, record.run_id, record.status, event_headers(record), record.updated_at)
            for subscriber in takers:
                shares.setdefault(id(subscriber), (subscriber, []))[1].append((event, record))
        for subscriber, handed in shares.values():
            subscriber.deliver(handed)
