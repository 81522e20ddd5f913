"""The node's scheduler actor: claims, renews and releases roles, and tells actors.

Each subscribed role is claimed through its workflow's own `RoleScheduler`. A held role
with a time-bounded lease is renewed at a third of its ttl, and the actor is told to stop
working a little before the lease would run out, so a node that cannot renew (the
database is away) gives the role up before another node may take it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from typing import Any

import pykka

from actorflow.log import logger
from actorflow.protocols import RoleScheduler
from actorflow.runtime.messages import RoleGranted, RoleLost, Subscribe, Tick, Unsubscribe
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

    def on_start(self) -> None:
        """Start ticking."""
        self.node.add_thread(threading.current_thread())
        self.actor_ref.tell(_TICK)

    def on_receive(self, message: Any) -> None:
        """Handle a subscription change or a tick."""
        if isinstance(message, Subscribe):
            self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            claim = self._claims.get(message.role)
            if claim is not None and claim.actor == message.actor:
                del self._claims[message.role]
                if claim.held:
                    self._release(claim)
        elif isinstance(message, Tick):
            self._tick()

    def _subscribe(self, message: Subscribe) -> None:
        claim = self._claims.get(message.role)
        if claim is None:
            claim = _Claim(message.role, message.scheduler, message.actor, message.workflow_name)
            self._claims[message.role] = claim
            self._attempt(claim)
        else:
            claim.actor = message.actor
            if claim.held:
                self._grant(claim)
            else:
                self._attempt(claim)
        self.node.subscribed(message.role)

    def _tick(self) -> None:
        now = time.monotonic()
        for claim in list(self._claims.values()):
            if now >= claim.next_attempt:
                self._attempt(claim)
        upcoming = min((c.next_attempt for c in self._claims.values()), default=now + TICK_BUDGET)
        self.node.scheduler_wake.wait(max(0.0, min(upcoming - time.monotonic(), TICK_BUDGET)))
        self.node.scheduler_wake.clear()
        self.actor_ref.tell(_TICK)

    def _attempt(self, claim: _Claim) -> None:
        started = time.monotonic()
        try:
            lease = claim.scheduler.acquire(claim.role, self.node.node_id)
        except Exception as exc:  # noqa: BLE001 - keep the role until its lease runs out
            logger.warning("role %s: could not claim or renew: %s", claim.role, exc)
            claim.next_attempt = started + self.claim_interval
            if claim.held and claim.valid_until is not None and time.monotonic() >= claim.valid_until:
                self._lost(claim)
            return
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
        """Release every role this node holds."""
        for claim in self._claims.values():
            if claim.held:
                self._release(claim)
        self._claims.clear()
