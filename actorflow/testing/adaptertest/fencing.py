"""The fencing suites (`FencedStore`, `FencedAcks`, `FencedTimeouts`): a stale lease's write is refused.

A node that froze (or lost its network) past its lease may wake up and commit what it
had in hand after its role passed to another node. A store that fences checks the
write's `Fence` against the role's current lease in the write's own transaction.
"""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from actorflow.capabilities import FencedAcks, FencedReceiver, FencedStore, FencedTimeouts
from actorflow.errors import RecordNotFound, StaleTerm
from actorflow.event import Event
from actorflow.protocols import EventStreamer, Fence, Lease, RecordStore, RoleScheduler, TimeoutStore
from actorflow.testing.adaptertest._records import dummy_record, next_version
from actorflow.testing.adaptertest.eventstreamer import collect
from actorflow.testing.adaptertest.rolescheduler import await_role

__all__ = [
    "FencedAcksSuite",
    "FencedPairFactory",
    "FencedStoreSuite",
    "FencedStreamerFactory",
    "FencedTimeoutsFactory",
    "FencedTimeoutsSuite",
]

FencedPairFactory = Callable[[], tuple[RecordStore, RoleScheduler]]
"""Makes one node's record store and role scheduler, on the database every call shares."""

FencedStreamerFactory = Callable[[], tuple[EventStreamer, RoleScheduler]]
"""Makes one node's event streamer and role scheduler, on the database every call shares."""

FencedTimeoutsFactory = Callable[[], tuple[TimeoutStore, RoleScheduler]]
"""Makes one node's timeout store and role scheduler, on the database every call shares."""

ROLE = "my_workflow-1-consumer-1-of-1"


class _Elsewhere:
    """A role scheduler whose leases live in no database a store can see."""

    def acquire(self, role: str, node_id: str) -> Lease | None:
        return Lease(role, node_id, None, 1)

    def release(self, role: str, node_id: str) -> None:
        """Nothing is held."""


class FencedStoreSuite:
    """Conformance tests for a record store that fences (`actorflow.capabilities.FencedStore`).

    Subclass it under a ``Test...`` name and give it a ``make_fenced_pair`` fixture: a
    callable returning a (record store, role scheduler) pair on one database, each call
    another node's pair on the same database. The schedulers' leases must expire (a short
    ttl makes the suite quick).
    """

    @pytest.fixture
    def make_fenced_pair(self) -> FencedPairFactory:
        """Override this: return a callable ``() -> (record store, role scheduler)`` on one database."""
        pytest.fail("FencedStoreSuite needs a make_fenced_pair fixture returning (record store, role scheduler)")

    def _pair(self, make: FencedPairFactory) -> tuple[Any, RoleScheduler]:
        store, scheduler = make()
        assert isinstance(store, FencedStore), "FencedStoreSuite is for stores that fence"
        assert store.fences_with(scheduler), "the store must fence with a scheduler on its own database"
        return store, scheduler

    def test_a_store_fences_only_with_a_scheduler_on_its_own_database(
        self, make_fenced_pair: FencedPairFactory
    ) -> None:
        """fences_with is False for a scheduler whose leases it cannot see."""
        store, _ = self._pair(make_fenced_pair)
        assert not store.fences_with(_Elsewhere())

    def test_a_write_under_the_current_lease_is_stored(self, make_fenced_pair: FencedPairFactory) -> None:
        """The holder's writes go through, as without a fence."""
        store, scheduler = self._pair(make_fenced_pair)
        lease = scheduler.acquire(ROLE, "node-0")
        assert lease is not None
        v1 = dummy_record()
        assert store.store_many([v1], fence=Fence(ROLE, "node-0", lease.term)) == [None]
        assert store.store_many([next_version(v1)], fence=Fence(ROLE, "node-0", lease.term)) == [None]
        assert store.lookup(v1.run_id).meta.version == 2

    def test_a_write_under_a_lease_the_role_moved_on_from_stores_nothing(
        self, make_fenced_pair: FencedPairFactory
    ) -> None:
        """Node 0's lease ran out and node 1 took the role: node 0's late batch is refused whole."""
        store, first = self._pair(make_fenced_pair)
        _, second = self._pair(make_fenced_pair)
        v1 = dummy_record()
        store.store(v1)
        old = first.acquire(ROLE, "node-0")
        assert old is not None
        new = await_role(second, ROLE, "node-1", timeout=(old.ttl or 0) + 5)
        assert new is not None, "the unrenewed lease never ran out"
        late = [next_version(v1), dummy_record(foreign_id="late-newcomer")]
        with pytest.raises(StaleTerm):
            store.store_many(late, fence=Fence(ROLE, "node-0", old.term))
        assert store.lookup(v1.run_id).meta.version == 1
        with pytest.raises(RecordNotFound):
            store.lookup(late[1].run_id)
        assert store.store_many(late, fence=Fence(ROLE, "node-1", new.term)) == [None, None]

    def test_a_write_under_a_released_lease_is_refused(self, make_fenced_pair: FencedPairFactory) -> None:
        """A node that released its role (it stopped, or handed it over) writes nothing more under that lease."""
        store, scheduler = self._pair(make_fenced_pair)
        lease = scheduler.acquire(ROLE, "node-0")
        assert lease is not None
        scheduler.release(ROLE, "node-0")
        with pytest.raises(StaleTerm):
            store.store_many([dummy_record()], fence=Fence(ROLE, "node-0", lease.term))

    def test_a_write_under_a_lease_never_granted_is_refused(self, make_fenced_pair: FencedPairFactory) -> None:
        """A fence the scheduler never gave out (another node's id, a term ahead) is refused."""
        store, scheduler = self._pair(make_fenced_pair)
        lease = scheduler.acquire(ROLE, "node-0")
        assert lease is not None
        for fence in (
            Fence(ROLE, "node-9", lease.term),
            Fence(ROLE, "node-0", lease.term + 1),
            Fence("other", "node-0", 1),
        ):
            with pytest.raises(StaleTerm):
                store.store_many([dummy_record()], fence=fence)


class FencedAcksSuite:
    """Conformance tests for an event streamer whose acknowledgements fence (`actorflow.capabilities.FencedAcks`).

    Subclass it under a ``Test...`` name and give it a ``make_fenced_streamer`` fixture:
    a callable returning an (event streamer, role scheduler) pair on one database, each
    call another node's pair on the same database, the schedulers' leases expiring
    (a short ttl makes the suite quick).
    """

    @pytest.fixture
    def make_fenced_streamer(self) -> FencedStreamerFactory:
        """Override this: return a callable ``() -> (event streamer, role scheduler)`` on one database."""
        pytest.fail("FencedAcksSuite needs a make_fenced_streamer fixture returning (event streamer, role scheduler)")

    def _pair(self, make: FencedStreamerFactory) -> tuple[Any, RoleScheduler]:
        streamer, scheduler = make()
        assert isinstance(streamer, FencedAcks), "FencedAcksSuite is for streamers whose acks fence"
        assert streamer.fences_with(scheduler), "the streamer must fence with a scheduler on its own database"
        assert not streamer.fences_with(_Elsewhere())
        return streamer, scheduler

    @staticmethod
    def _read(streamer: Any, name: str, count: int) -> tuple[Any, list[Event]]:
        receiver = streamer.new_receiver("fenced-topic", name)
        fenced: object = receiver
        assert isinstance(fenced, FencedReceiver), "a FencedAcks streamer's receivers ack under a fence"
        events = collect(receiver, count)
        assert len(events) == count, f"expected {count} events, got {len(events)}"
        return receiver, events

    def _send(self, streamer: Any, count: int) -> None:
        sender = streamer.new_sender("fenced-topic")
        for i in range(count):
            sender.send(f"run-{i}", 1, {})
        sender.close()

    def test_an_ack_under_the_current_lease_moves_the_cursor(self, make_fenced_streamer: FencedStreamerFactory) -> None:
        """The holder's acknowledgement goes through, as without a fence."""
        streamer, scheduler = self._pair(make_fenced_streamer)
        lease = scheduler.acquire(ROLE, "node-0")
        assert lease is not None
        self._send(streamer, 2)
        receiver, events = self._read(streamer, "holder", 2)
        receiver.ack_fenced(events[0], Fence(ROLE, "node-0", lease.term))
        receiver.close()
        _, again = self._read(streamer, "holder", 1)
        assert again[0].id == events[1].id, "the acknowledged event was delivered again"

    def test_an_ack_under_a_lease_the_role_moved_on_from_moves_nothing(
        self, make_fenced_streamer: FencedStreamerFactory
    ) -> None:
        """Node 0's lease ran out and node 1 took the role: node 0's late ack leaves the cursor where it was."""
        streamer, first = self._pair(make_fenced_streamer)
        _, second = self._pair(make_fenced_streamer)
        self._send(streamer, 2)
        old = first.acquire(ROLE, "node-0")
        assert old is not None
        receiver, events = self._read(streamer, "shared", 2)
        new = await_role(second, ROLE, "node-1", timeout=(old.ttl or 0) + 5)
        assert new is not None, "the unrenewed lease never ran out"
        # The lease it had, then one never given out: each ack refused.
        for event, fence in zip(
            events, (Fence(ROLE, "node-0", old.term), Fence(ROLE, "node-9", new.term)), strict=True
        ):
            with pytest.raises(StaleTerm):
                receiver.ack_fenced(event, fence)
        receiver.close()
        successor, again = self._read(streamer, "shared", 2)
        assert [e.id for e in again] == [e.id for e in events], "a stale ack moved the cursor"
        successor.ack_fenced(again[1], Fence(ROLE, "node-1", new.term))


class FencedTimeoutsSuite:
    """Conformance tests for a timeout store whose writes fence (`actorflow.capabilities.FencedTimeouts`).

    Subclass it under a ``Test...`` name and give it a ``make_fenced_timeouts`` fixture:
    a callable returning a (timeout store, role scheduler) pair on one database, each
    call another node's pair on the same database, the leases expiring (a short ttl).
    """

    @pytest.fixture
    def make_fenced_timeouts(self) -> FencedTimeoutsFactory:
        """Override this: return a callable ``() -> (timeout store, role scheduler)`` on one database."""
        pytest.fail(
            "FencedTimeoutsSuite needs a make_fenced_timeouts fixture returning (timeout store, role scheduler)"
        )

    def _pair(self, make: FencedTimeoutsFactory) -> tuple[FencedTimeouts, RoleScheduler]:
        store, scheduler = make()
        assert isinstance(store, FencedTimeouts), "FencedTimeoutsSuite is for timeout stores that fence"
        assert store.fences_with(scheduler), "the store must fence with a scheduler on its own database"
        assert not store.fences_with(_Elsewhere())
        return store, scheduler

    @staticmethod
    def _create(store: FencedTimeouts, fence: Fence | None, run_id: str = "run-1") -> int:
        expire_at = datetime(2030, 1, 1, tzinfo=UTC)
        return store.create("my_workflow", "fid", run_id, 2, expire_at, created_at=expire_at, fence=fence)

    def test_timeout_writes_under_the_current_lease_go_through(
        self, make_fenced_timeouts: FencedTimeoutsFactory
    ) -> None:
        """The holder creates, completes and cancels, as without a fence."""
        store, scheduler = self._pair(make_fenced_timeouts)
        lease = scheduler.acquire(ROLE, "node-0")
        assert lease is not None
        fence = Fence(ROLE, "node-0", lease.term)
        first, second = self._create(store, fence, "run-1"), self._create(store, fence, "run-2")
        store.complete(first, fence=fence)
        store.cancel(second, fence=fence)
        assert store.list("my_workflow") == []  # type: ignore[attr-defined]

    def test_timeout_writes_under_a_lease_the_role_moved_on_from_change_nothing(
        self, make_fenced_timeouts: FencedTimeoutsFactory
    ) -> None:
        """Node 0's lease ran out and node 1 took the role: node 0 creates, completes and cancels nothing."""
        store, first = self._pair(make_fenced_timeouts)
        _, second = self._pair(make_fenced_timeouts)
        old = first.acquire(ROLE, "node-0")
        assert old is not None
        kept = self._create(store, Fence(ROLE, "node-0", old.term))
        new = await_role(second, ROLE, "node-1", timeout=(old.ttl or 0) + 5)
        assert new is not None, "the unrenewed lease never ran out"
        stale = Fence(ROLE, "node-0", old.term)
        with pytest.raises(StaleTerm):
            self._create(store, stale, "run-2")
        with pytest.raises(StaleTerm):
            store.complete(kept, fence=stale)
        with pytest.raises(StaleTerm):
            store.cancel(kept, fence=stale)
        assert [t.id for t in store.list("my_workflow")] == [kept]  # type: ignore[attr-defined]
        store.complete(kept, fence=Fence(ROLE, "node-1", new.term))
