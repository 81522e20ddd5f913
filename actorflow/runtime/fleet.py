"""One node's part in a fleet: join, heartbeat, and place roles over the live nodes.

Used by the scheduler actor for a role scheduler with `Membership`. Each heartbeat is
one call that renews the node and every lease it holds and tells who is live, who may
work what, and who holds what; from that, every node computes the same placement
(`place`, rendezvous hashing with bounded loads) and acts on its own share:

* a role it holds and should keep: renewed (the actor's deadline moves on);
* a role it holds that is placed on another live node: handed over, after the work in hand;
* a free role placed on it: taken; a free role placed elsewhere: taken only once it has
  stayed free for a ttl (the node it is placed on may be gone without having left);
* a role it held that the heartbeat did not renew: lost (the lease ran out).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from actorflow.capabilities import FleetChanges, FleetView, Membership
from actorflow.log import logger
from actorflow.runtime.placement import place

__all__ = ["Claim", "Claims", "Fleet"]


class Claim(Protocol):
    """What the fleet reads of a role's claim."""

    role: str
    valid_until: float | None
    handing_over: bool


class Claims(Protocol):
    """What the fleet asks of the scheduler actor (which owns the claims and tells the actors).

    The claims passed back are those `claim_of` returned (the actor's own type).
    """

    def claim_of(self, role: str) -> Claim | None:
        """The claim of ``role`` on this node, if subscribed."""
        ...

    def renewed(self, claim: Any, valid_until: float, term: int) -> None:
        """The node holds the role until ``valid_until`` under ``term``."""
        ...

    def hand_over(self, claim: Any) -> None:
        """Another node should work the role."""
        ...

    def lost(self, claim: Any) -> None:
        """The node no longer holds the role."""
        ...

    def attempt(self, claim: Any) -> None:
        """Try to take the role now."""
        ...

    def scheduler_answered(self, ttl: float | None) -> None:
        """A call to the scheduler succeeded."""
        ...

    def scheduler_failed(self) -> None:
        """A call to the scheduler failed."""
        ...

    def starving(self, *, starved: bool) -> None:
        """Whether the node holds no role while roles it may work are unclaimed."""
        ...


class Fleet:
    """The roles this node wants from one membership scheduler, and its heartbeats to it."""

    def __init__(self, scheduler: Membership, node_id: str, retry: float) -> None:
        self.scheduler = scheduler
        self.node_id = node_id
        self.retry = retry
        self.roles: set[str] = set()
        self.next_beat = 0.0
        self._joined = False
        self._dirty = True
        self._free_since: dict[str, float] = {}
        self._changes = scheduler if isinstance(scheduler, FleetChanges) else None
        self._changes_seen = -1

    def due(self, now: float) -> bool:
        """Whether to heartbeat now: its interval passed, or another node released a role, left or joined."""
        if self._changes is not None:
            changes = self._changes.fleet_changes()
            if changes != self._changes_seen:
                self._changes_seen = changes
                return True
        return now >= self.next_beat

    def want(self, role: str) -> None:
        """Note that the node may work ``role``; say so at the next heartbeat (soon: subscriptions come in bursts)."""
        self.roles.add(role)
        self._dirty = True
        self.next_beat = min(self.next_beat, time.monotonic() + 0.02)

    def forget(self, role: str) -> None:
        """Note that the node no longer works ``role``."""
        self.roles.discard(role)
        self._dirty = True

    def beat(self, actor: Claims) -> None:
        """Join if needed, heartbeat, then act on this node's share of the placement."""
        started = time.monotonic()
        try:
            view = self._heartbeat()
        except Exception as exc:  # noqa: BLE001 - keep the roles until their deadlines pass
            logger.warning("fleet heartbeat of node %s failed: %s", self.node_id, exc)
            actor.scheduler_failed()
            self.next_beat = started + self.retry
            for role in self.roles:
                claim = actor.claim_of(role)
                if claim is not None and claim.valid_until is not None and time.monotonic() >= claim.valid_until:
                    actor.lost(claim)
            return
        actor.scheduler_answered(view.ttl)
        self.next_beat = started + view.ttl / 3
        # Trust the renewals only until their start + ttl, minus a margin (River's rule).
        valid_until = started + view.ttl - max(view.ttl * 0.2, 0.05)
        placed = place(view.candidates)
        for role in sorted(self.roles):
            claim = actor.claim_of(role)
            if claim is not None:
                self._place(actor, claim, view, placed.get(role), started, valid_until)
        unclaimed = any(role not in view.holders for role in self.roles)
        actor.starving(starved=unclaimed and not view.leases)

    def _heartbeat(self) -> FleetView:
        if self._dirty or not self._joined:
            self.scheduler.join(self.node_id, sorted(self.roles))
            self._joined, self._dirty = True, False
        view = self.scheduler.heartbeat(self.node_id)
        if not view.joined:  # away past its ttl and dropped: join again
            self.scheduler.join(self.node_id, sorted(self.roles))
            view = self.scheduler.heartbeat(self.node_id)
        return view

    def _place(
        self, actor: Claims, claim: Claim, view: FleetView, preferred: str | None, started: float, valid_until: float
    ) -> None:
        role = claim.role
        term = view.leases.get(role)
        if term is not None:  # this node holds it: renewed
            self._free_since.pop(role, None)
            actor.renewed(claim, valid_until, term)
            if preferred not in (None, self.node_id) and not claim.handing_over:
                actor.hand_over(claim)
            return
        if claim.handing_over:
            return  # its lease ran out while the actor finishes; Released still comes
        actor.lost(claim)
        if role in view.holders:
            self._free_since.pop(role, None)
            return
        free_since = self._free_since.setdefault(role, started)
        if preferred in (None, self.node_id) or started - free_since >= view.ttl:
            actor.attempt(claim)

    def leave(self) -> None:
        """Release every lease of this node and drop it from the live nodes (on stop)."""
        try:
            self.scheduler.leave(self.node_id)
        except Exception as exc:  # noqa: BLE001 - the leases run out on their own
            logger.warning("node %s could not leave its fleet: %s", self.node_id, exc)
