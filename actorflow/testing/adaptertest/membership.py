"""The `Membership` conformance suite: who is live, what each may work, one heartbeat renewing all."""

# ruff: noqa: S101 - a pytest suite asserts

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from actorflow.capabilities import Membership
from actorflow.testing.adaptertest.rolescheduler import RoleSchedulerFactory, await_role

__all__ = ["MembershipSuite"]


def _members(make: RoleSchedulerFactory, n: int) -> list[Any]:
    """``n`` schedulers that are both `RoleScheduler` and `Membership` (typed loosely: both are used)."""
    members: list[Any] = [s for s in make(n) if isinstance(s, Membership)]
    assert len(members) == n, "MembershipSuite is for role schedulers that keep membership"
    return members


class MembershipSuite:
    """Conformance tests for a role scheduler with `actorflow.capabilities.Membership`.

    Subclass it under a ``Test...`` name with the ``make_role_scheduler`` fixture of
    `RoleSchedulerSuite` (``n`` schedulers on one backing); their leases must expire
    (a ttl under a second keeps the suite quick).
    """

    @pytest.fixture
    def make_role_scheduler(self) -> RoleSchedulerFactory:
        """Override this: return a callable ``n -> n schedulers`` sharing one backing."""
        pytest.fail("MembershipSuite needs a make_role_scheduler fixture")

    def test_a_heartbeat_renews_the_nodes_leases_and_tells_the_fleet(
        self, make_role_scheduler: RoleSchedulerFactory
    ) -> None:
        """After joining, one heartbeat renews every lease the node holds and lists candidates and holders."""
        first, second = _members(make_role_scheduler, 2)
        first.join("node-0", ["r1", "r2"])
        second.join("node-1", ["r2", "r3"])
        lease = first.acquire("r1", "node-0")
        assert lease is not None
        view = first.heartbeat("node-0")
        assert view.joined
        assert dict(view.leases) == {"r1": lease.term}
        assert {role: set(nodes) for role, nodes in view.candidates.items()} == {
            "r1": {"node-0"},
            "r2": {"node-0", "node-1"},
            "r3": {"node-1"},
        }
        assert dict(view.holders) == {"r1": "node-0"}
        assert view.ttl > 0
        assert {n.node_id: n.roles for n in second.nodes()} == {"node-0": ("r1",), "node-1": ()}

    def test_a_node_that_never_joined_renews_nothing(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """Constructing a scheduler registers nothing; a heartbeat without a join says so."""
        (only,) = _members(make_role_scheduler, 1)
        assert only.nodes() == []
        view = only.heartbeat("stranger")
        assert not view.joined
        assert dict(view.leases) == {}

    def test_renewed_by_heartbeats_a_lease_outlives_its_ttl(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """Heartbeats alone (no acquire) keep a node's lease and its term."""
        first, second = _members(make_role_scheduler, 2)
        first.join("node-0", ["r"])
        lease = first.acquire("r", "node-0")
        assert lease is not None
        assert lease.ttl is not None
        pace = threading.Event()  # never set: paces the heartbeats
        end = time.monotonic() + 2 * lease.ttl
        while time.monotonic() < end:
            assert dict(first.heartbeat("node-0").leases) == {"r": lease.term}
            assert second.acquire("r", "node-1") is None
            pace.wait(lease.ttl / 4)

    def test_a_node_away_past_its_ttl_is_no_longer_live(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """Without heartbeats a node drops out of the fleet; its heartbeat then asks it to join again."""
        first, second = _members(make_role_scheduler, 2)
        first.join("node-0", ["r"])
        second.join("node-1", ["r"])
        lease = first.acquire("r", "node-0")
        assert lease is not None
        assert lease.ttl is not None
        taken = await_role(second, "r", "node-1", timeout=lease.ttl + 5)
        assert taken is not None
        second.join("node-1", ["r"])  # it stayed away as long: it joins again
        view = second.heartbeat("node-1")
        assert dict(view.candidates) == {"r": ("node-1",)}
        assert dict(view.holders) == {"r": "node-1"}
        assert [n.node_id for n in second.nodes()] == ["node-1"]
        assert not first.heartbeat("node-0").joined

    def test_leaving_releases_every_lease_at_once(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """A node that leaves frees its roles for the others now, not at its leases' expiry."""
        first, second = _members(make_role_scheduler, 2)
        first.join("node-0", ["a", "b"])
        assert first.acquire("a", "node-0") is not None
        assert first.acquire("b", "node-0") is not None
        first.leave("node-0")
        assert second.acquire("a", "node-1") is not None
        assert second.acquire("b", "node-1") is not None
        assert [n.node_id for n in second.nodes()] == []
