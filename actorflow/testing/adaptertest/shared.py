"""The shared-database suite: a record store and an event streamer in one database work as one.

When both keep their data in the same database, a consumer's acknowledgement rides in the
commit of the batch it follows (`CommitAcks` + `CursorMoves`), and a receiver reads each
event's current record in the same query as the event (`RecordsAlong`).
"""

# ruff: noqa: S101 - a pytest suite asserts

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from actorflow.capabilities import CommitAcks, CursorMoves, DirectPublisher, RecordsAlong
from actorflow.event import Event, event_topic
from actorflow.protocols import EventStreamer, RecordStore
from actorflow.testing.adaptertest._records import WORKFLOW, dummy_record, next_version
from actorflow.testing.adaptertest.eventstreamer import collect

__all__ = ["SharedDatabaseFactory", "SharedDatabaseSuite"]

SharedDatabaseFactory = Callable[[], tuple[RecordStore, EventStreamer]]
"""Makes a record store and an event streamer on one fresh database."""


class _Elsewhere:
    """An event streamer in no database a store can see."""

    def new_sender(self, topic: str) -> Any:
        raise NotImplementedError

    def new_receiver(self, topic: str, name: str, options: Any = None) -> Any:
        raise NotImplementedError


class SharedDatabaseSuite:
    """Conformance tests for a record store and an event streamer that share a database.

    Subclass it under a ``Test...`` name and give it a ``make_shared_pair`` fixture: a
    callable returning a (record store, event streamer) pair on one fresh database.
    """

    @pytest.fixture
    def make_shared_pair(self) -> SharedDatabaseFactory:
        """Override this: return a callable ``() -> (record store, event streamer)`` on one database."""
        pytest.fail("SharedDatabaseSuite needs a make_shared_pair fixture returning (record store, event streamer)")

    def _pair(self, make: SharedDatabaseFactory) -> tuple[Any, Any]:
        store, streamer = make()
        assert isinstance(store, CommitAcks), "the store moves its streamer's cursors in its commits"
        assert isinstance(store, DirectPublisher), "the store writes its streamer's events itself"
        assert store.acks_for(streamer)
        assert not store.acks_for(_Elsewhere())
        assert store.publish_directly(WORKFLOW, streamer)
        return store, streamer

    @staticmethod
    def _events(streamer: Any, topic: str, name: str, count: int) -> tuple[Any, list[Event]]:
        receiver = streamer.new_receiver(topic, name)
        events = collect(receiver, count)
        assert len(events) == count, f"expected {count} events, got {len(events)}"
        return receiver, events

    def test_a_cursor_move_is_made_in_the_commit_of_the_records(self, make_shared_pair: SharedDatabaseFactory) -> None:
        """The move given to store_many is saved with the records: a new receiver starts past it."""
        store, streamer = self._pair(make_shared_pair)
        first, second = dummy_record(foreign_id="a"), dummy_record(foreign_id="b")
        assert store.store_many([first, second]) == [None, None]
        topic = event_topic(first)
        receiver, events = self._events(streamer, topic, "consumer", 2)
        moves: object = receiver
        assert isinstance(moves, CursorMoves), "the streamer's receivers give their acks as cursor moves"
        move = moves.cursor_move(events[0])
        assert move is not None
        receiver.close()
        assert store.store_many([next_version(first)], acks=[move]) == [None]
        _, again = self._events(streamer, topic, "consumer", 1)
        assert again[0].id == events[1].id, "the move was not made, or went past the event"

    def test_a_refused_record_does_not_keep_the_cursor_from_moving(
        self, make_shared_pair: SharedDatabaseFactory
    ) -> None:
        """A version conflict in the batch is reported in its place; the cursor still moves with the others."""
        store, streamer = self._pair(make_shared_pair)
        record = dummy_record()
        store.store_many([record])
        receiver, events = self._events(streamer, event_topic(record), "consumer", 1)
        move = receiver.cursor_move(events[0])
        receiver.close()
        stale = next_version(record)  # the same version as the write before it: refused
        results = store.store_many([next_version(record), stale], acks=[move])
        assert results[0] is None
        assert results[1] is not None, "the second write of the same version was not refused"
        _, again = self._events(streamer, event_topic(record), "consumer", 1)
        assert again[0].id > events[0].id, "the cursor did not move"

    def test_a_receiver_reads_each_events_current_record_with_it(self, make_shared_pair: SharedDatabaseFactory) -> None:
        """With records read along, receive() brings each event's record as it is now; records() hands them once."""
        store, streamer = self._pair(make_shared_pair)
        first, second = dummy_record(foreign_id="a"), dummy_record(foreign_id="b")
        store.store_many([first, second])
        moved = next_version(second)
        store.store_many([moved])  # b's record moved on since its first event
        receiver = streamer.new_receiver(event_topic(first), "along")
        along: object = receiver
        assert isinstance(along, RecordsAlong), "the streamer's receivers read records along"
        along.read_records_along()
        events = list(receiver.receive(2, 5.0))
        assert [e.run_id for e in events] == [first.run_id, second.run_id]
        records = along.records()
        assert records[first.run_id] == first
        assert records[second.run_id] == moved
        assert along.records() == {}
        receiver.close()
