"""The node's scheduler actor: claims, renews and releases roles, and tells actors.

Each subscribed role is claimed through its workflow's own `RoleScheduler`. A held role
with a time-bounded lease is renewed at a third of its ttl, and the actor is told to stop
working a little before the lease would run out, so a node that cannot renew (the
database is away) gives the role up before another node may take it.

A scheduler with `Membership` (the shared lease tables) is driven by fleet heartbeats
instead (``fleet.py``): the node joins, one call renews all its leases, and roles are
placed over the live nodes by rendezvous hashing; a role placed elsewhere is handed
over once the work in hand is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from typing import Any

import pykka

from actorflow.capabilities import Membership
from actorflow.log import logger
from actorflow.protocols import RoleScheduler
from actorflow.runtime.fleet import Fleet
from actorflow.runtime.messages import (
    HandOver,
    JoinFleets,
    Released,
    RoleGranted,
    RoleLost,
    Subscribe,
    Tick,
    Unsubscribe,
)
from actorflow.runtime.node import TICK_BUDGET, Node

__all__ = ["SchedulerActor"]

_TICK = Tick()


@dataclasses.dataclass
class _Claim:
    role: str
    scheduler: RoleScheduler
    actor: pykka.ActorRef[Any]
    workflow_name: str
    held: bool = False
    valid_until: float | None = None
    term: int = 0
    next_attempt: float = 0.0
    handing_over: bool = False  # told to stop for another node; the lease goes once it has


class SchedulerActor(pykka.ThreadingActor):
    """Claims the roles of this node's process actors.

    Args:
        node: the node's shared state.
        claim_interval: how often a role held elsewhere is tried again (seconds).
        renew_interval: how often an unbounded lease is re-confirmed (seconds).
    """

    def __init__(self, node: Node, claim_interval: float = 0.5, renew_interval: float = 5.0) -> None:
        super().__init__()
        self.node = node
        self.claim_interval = claim_interval
        self.renew_interval = renew_interval
        self._claims: dict[str, _Claim] = {}
        self._fleets: dict[int, Fleet] = {}  # by id of the membership scheduler

    def on_start(self) -> None:
        """Start ticking."""
        self.node.add_thread(threading.current_thread())
        self.actor_ref.tell(_TICK)

    def on_receive(self, message: Any) -> None:
        """Handle a subscription change, a tick, or a request to join the fleets now."""
        if isinstance(message, Subscribe):
            self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            claim = self._claims.get(message.role)
            if claim is not None and claim.actor == message.actor:
                del self._claims[message.role]
                fleet = self._fleets.get(id(claim.scheduler))
                if fleet is not None:
                    fleet.forget(claim.role)
                if claim.held:
                    self._release(claim)
        elif isinstance(message, Released):
            claim = self._claims.get(message.role)
            if claim is not None and claim.actor == message.actor and claim.handing_over:
                claim.handing_over = False
                if claim.held:
                    self._release(claim)  # the other node takes it at its next heartbeat
        elif isinstance(message, Tick):
            self._tick()
        elif isinstance(message, JoinFleets):
            for fleet in self._fleets.values():
                fleet.beat(self)

    def _subscribe(self, message: Subscribe) -> None:
        claim = self._claims.get(message.role)
        fleet = self._fleet_of(message.scheduler)
        if claim is None:
            claim = _Claim(message.role, message.scheduler, message.actor, message.workflow_name)
            self._claims[message.role] = claim
        else:
            claim.actor = message.actor
        if fleet is not None:
            claim.next_attempt = float("inf")  # the fleet's heartbeats claim and renew it
            fleet.want(claim.role)
            if claim.held:
                self._grant(claim)
        elif claim.held:
            self._grant(claim)
        else:
            self._attempt(claim)
        self.node.subscribed(message.role)

    def _fleet_of(self, scheduler: RoleScheduler) -> Fleet | None:
        if not isinstance(scheduler, Membership):
            return None
        fleet = self._fleets.get(id(scheduler))
        if fleet is None:
            fleet = self._fleets[id(scheduler)] = Fleet(scheduler, self.node.node_id, self.claim_interval)
        return fleet

    def _tick(self) -> None:
        now = time.monotonic()
        for fleet in self._fleets.values():
            if fleet.due(now):
                fleet.beat(self)
        for claim in list(self._claims.values()):
            if now >= claim.next_attempt:
                self._attempt(claim)
        upcoming = min(
            [c.next_attempt for c in self._claims.values()] + [f.next_beat for f in self._fleets.values()],
            default=now + TICK_BUDGET,
        )
        self.node.scheduler_wake.wait(max(0.0, min(upcoming - time.monotonic(), TICK_BUDGET)))
        self.node.scheduler_wake.clear()
        self.actor_ref.tell(_TICK)

    def scheduler_answered(self, ttl: float | None) -> None:
        """A call to a role scheduler succeeded: the node is fine for a lease's ttl (or a renewal) more."""
        self.node.scheduler_answered(ttl if ttl is not None else 2 * self.renew_interval)

    def scheduler_failed(self) -> None:
        """A call to a role scheduler failed (counted; /healthz fails once no success covers the node)."""
        self.node.metrics.claim_errors.labels(self.node.node_id).inc()

    def starving(self, *, starved: bool) -> None:
        """Whether the node holds no role while roles it may work are unclaimed."""
        self.node.starving(starved=starved)

    def claim_of(self, role: str) -> _Claim | None:
        """The claim of ``role`` on this node, if subscribed."""
        return self._claims.get(role)

    def renewed(self, claim: _Claim, valid_until: float, term: int) -> None:
        """The node holds ``claim``'s role until ``valid_until`` under ``term`` (a heartbeat said so)."""
        claim.valid_until, claim.term = valid_until, term
        self.node.hold(claim.role, term)
        was_held, claim.held = claim.held, True
        if not was_held:
            self.node.metrics.roles_held.labels(claim.workflow_name, self.node.node_id).inc()
        if not claim.handing_over:  # a role being handed over is not granted again: its actor is stopping
            self._grant(claim)

    def hand_over(self, claim: _Claim) -> None:
        """Another node should work ``claim``'s role: the actor stops after the work in hand, then it goes."""
        claim.handing_over = True
        try:
            claim.actor.tell(HandOver())
        except pykka.ActorDeadError:
            claim.handing_over = False
            self._release(claim)

    def lost(self, claim: _Claim) -> None:
        """The node no longer holds ``claim``'s role (its lease ran out or passed on)."""
        if claim.held:
            self._lost(claim)

    def attempt(self, claim: _Claim) -> None:
        """Try to take ``claim``'s role now (a free role placed here)."""
        self._attempt(claim)
        if id(claim.scheduler) in self._fleets:
            claim.next_attempt = float("inf")  # renewed by the heartbeats from now on

    def _attempt(self, claim: _Claim) -> None:
        started = time.monotonic()
        try:
            lease = claim.scheduler.acquire(claim.role, self.node.node_id)
        except Exception as exc:  # noqa: BLE001 - keep the role until its lease runs out
            logger.warning("role %s: could not claim or renew: %s", claim.role, exc)
            self.scheduler_failed()
            claim.next_attempt = started + self.claim_interval
            if claim.held and claim.valid_until is not None and time.monotonic() >= claim.valid_until:
                self._lost(claim)
            return
        self.scheduler_answered(lease.ttl if lease is not None else None)
        if lease is None:
            claim.next_attempt = started + self.claim_interval
            if claim.held:
                self._lost(claim)
            return
        if lease.ttl is None:
            claim.valid_until = None
            claim.next_attempt = started + self.renew_interval
        else:
            # Stop working well before the lease can expire for the other nodes.
            claim.valid_until = started + lease.ttl - max(lease.ttl * 0.2, 0.05)
            claim.next_attempt = started + lease.ttl / 3
        claim.term = lease.term
        self.node.hold(claim.role, lease.term)
        was_held, claim.held = claim.held, True
        if not was_held:
            self.node.metrics.roles_held.labels(claim.workflow_name, self.node.node_id).inc()
            self._grant(claim)
        elif lease.ttl is not None:
            self._grant(claim)

    def _grant(self, claim: _Claim) -> None:
        """Tell the actor it holds its role; an actor that is gone gives the role back."""
        try:
            claim.actor.tell(RoleGranted(claim.valid_until, claim.term))
        except pykka.ActorDeadError:
            # It stopped before its Subscribe was handled (its Unsubscribe follows).
            if self._claims.get(claim.role) is claim:
                del self._claims[claim.role]
            self._release(claim)

    def _lost(self, claim: _Claim) -> None:
        claim.held = False
        claim.valid_until = None
        self.node.unhold(claim.role)
        self.node.metrics.roles_held.labels(claim.workflow_name, self.node.node_id).dec()
        with contextlib.suppress(pykka.ActorDeadError):
            claim.actor.tell(RoleLost())

    def _release(self, claim: _Claim) -> None:
        claim.held = False
        self.node.unhold(claim.role)
        self.node.metrics.roles_held.labels(claim.workflow_name, self.node.node_id).dec()
        try:
            claim.scheduler.release(claim.role, self.node.node_id)
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own
            logger.warning("role %s: could not release: %s", claim.role, exc)

    def on_failure(self, *_exc_info: object) -> None:
        """Even after a crash, release every role this node holds (no node may keep them)."""
        self.on_stop()

    def on_stop(self) -> None:
        """Release every role this node holds; leave the fleets (one call releases all of a fleet's leases)."""
        for claim in self._claims.values():
            if claim.held and id(claim.scheduler) in self._fleets:
                claim.held = False
                self.node.unhold(claim.role)
                self.node.metrics.roles_held.labels(claim.workflow_name, self.node.node_id).dec()
            elif claim.held:
                self._release(claim)
        for fleet in self._fleets.values():
            fleet.leave()
        self._claims.clear()
        self._fleets.clear()
