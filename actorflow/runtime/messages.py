"""Actor messages: immutable, typed, one class per message."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

    from actorflow.protocols import RoleScheduler

__all__ = [
    "ChildExited",
    "ChildRecovered",
    "HandOver",
    "JoinFleets",
    "Released",
    "RoleGranted",
    "RoleLost",
    "Subscribe",
    "Tick",
    "Unsubscribe",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    """Do one bounded unit of work, then tell yourself the next Tick."""


@dataclasses.dataclass(frozen=True, slots=True)
class RoleGranted:
    """The node holds the actor's role until ``valid_until`` (monotonic; None: until lost), under ``term``."""

    valid_until: float | None
    term: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class RoleLost:
    """The node no longer holds the actor's role: stop working it now."""


@dataclasses.dataclass(frozen=True, slots=True)
class JoinFleets:
    """Heartbeat every fleet now (the node joins them): asked once every role is subscribed."""


@dataclasses.dataclass(frozen=True, slots=True)
class HandOver:
    """Another node should work the actor's role: stop after the work in hand, then say `Released`."""


@dataclasses.dataclass(frozen=True, slots=True)
class Released:
    """The actor of ``role`` stopped working it (after a `HandOver`): its lease may go."""

    role: str
    actor: pykka.ActorRef[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """Ask the scheduler to claim ``role`` for ``actor`` through ``scheduler``."""

    role: str
    scheduler: RoleScheduler
    actor: pykka.ActorRef[Any]
    workflow_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribe:
    """The actor of ``role`` stops; release the role."""

    role: str
    actor: pykka.ActorRef[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ChildExited:
    """A process actor stopped without being asked to (``error`` when it crashed)."""

    key: str
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class ChildRecovered:
    """A process actor started after a crash has done a tick of work without failing."""

    key: str
