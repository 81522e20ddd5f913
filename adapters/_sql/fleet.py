"""Rows of the fleet tables -> what `actorflow.capabilities.Membership` returns; fencing; for the SQL adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from actorflow.capabilities import FleetView, NodeInfo
from actorflow.errors import StaleTerm
from actorflow.protocols import Fence

__all__ = ["check_fence", "fleet_view", "node_infos", "stale_term"]


def fleet_view(
    *,
    joined: bool,
    leases: Iterable[Sequence[Any]],
    candidates: Iterable[Sequence[Any]],
    holders: Iterable[Sequence[Any]],
    ttl: float,
) -> FleetView:
    """A heartbeat's view from its rows: (role, term) leases, (role, node) candidates and holders."""
    by_role: dict[str, list[str]] = {}
    for role, node in candidates:
        by_role.setdefault(role, []).append(node)
    return FleetView(
        joined=joined,
        leases={role: int(term) for role, term in leases} if joined else {},
        candidates={role: tuple(sorted(nodes)) for role, nodes in by_role.items()},
        holders={str(role): str(node) for role, node in holders},
        ttl=ttl,
    )


def node_infos(rows: Iterable[Sequence[Any]], time_in: Callable[[Any], datetime]) -> list[NodeInfo]:
    """The live nodes from (node id, started_at, heartbeat_at, role or NULL) rows, ordered by node id."""
    found: dict[str, tuple[Any, Any, list[str]]] = {}
    for node_id, started_at, heartbeat_at, role in rows:
        entry = found.setdefault(node_id, (started_at, heartbeat_at, []))
        if role is not None:
            entry[2].append(role)
    return [
        NodeInfo(node_id, time_in(started), time_in(beat), tuple(roles))
        for node_id, (started, beat, roles) in sorted(found.items())
    ]


def stale_term(fence: Fence) -> StaleTerm:
    """The refusal of a write made under ``fence``, a lease its role has moved on from."""
    msg = f"role {fence.role} is no longer {fence.node_id}'s under term {fence.term}"
    return StaleTerm(msg, role=fence.role, node_id=fence.node_id, term=fence.term)


def check_fence(cursor: Any, query: str, fence: Fence) -> None:
    """Raise `StaleTerm` unless ``query`` (the dialect's ``check_fence``: role, node, term) finds ``fence`` current.

    Run in the transaction of the write the fence guards; the query keeps the lease from
    passing to another node before that write commits (a share lock, or the write lock).
    """
    cursor.execute(query, (fence.role, fence.node_id, fence.term))
    if cursor.fetchone() is None:
        raise stale_term(fence)
