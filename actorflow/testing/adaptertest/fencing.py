"""The `FencedStore` conformance suite: a write made under a lease the role has moved on from is refused.

A node that froze (or lost its network) past its lease may wake up and commit what it
had in hand after its role passed to another node. A store that fences checks the
write's `Fence` against the role's current lease in the write's own transaction.
"""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from actorflow.capabilities import FencedStore
from actorflow.errors import RecordNotFound, StaleTerm
from actorflow.protocols import Fence, Lease, RecordStore, RoleScheduler
from actorflow.testing.adaptertest._records import dummy_record, next_version
from actorflow.testing.adaptertest.rolescheduler import await_role

__all__ = ["FencedPairFactory", "FencedStoreSuite"]

FencedPairFactory = Callable[[], tuple[RecordStore, RoleScheduler]]
"""Makes one node's record store and role scheduler, on the database every call shares."""

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
