"""The status graph: edges from every step, callback and timeout to its destinations."""

from __future__ import annotations

from actorflow.errors import BuildError, InvalidTransition, UnknownStatus
from actorflow.status import RESERVED

__all__ = ["Graph"]


class Graph:
    """Directed graph of statuses (ints), remembering nodes in first-seen order."""

    def __init__(self) -> None:
        self._edges: dict[int, list[int]] = {}
        self._nodes: dict[int, None] = {}
        self._froms: set[int] = set()
        self._tos: set[int] = set()

    def add(self, frm: int, to: int) -> None:
        """Add the edge ``frm -> to``; reserved values (0, -1, -2) are refused."""
        if int(frm) in RESERVED:
            msg = f"cannot use reserved status {int(frm)} as 'from' node (0, -1 and -2 are reserved)"
            raise BuildError(msg)
        if int(to) in RESERVED:
            msg = f"cannot use reserved status {int(to)} as 'to' node (0, -1 and -2 are reserved)"
            raise BuildError(msg)
        self._edges.setdefault(frm, [])
        if to not in self._edges[frm]:
            self._edges[frm].append(to)
        self._nodes.setdefault(frm, None)
        self._nodes.setdefault(to, None)
        self._froms.add(frm)
        self._tos.add(to)

    def is_valid(self, status: int) -> bool:
        """True when ``status`` is a node of the graph."""
        return status in self._nodes

    def require(self, status: int) -> None:
        """Raise `UnknownStatus` unless ``status`` is a node."""
        if status not in self._nodes:
            msg = f"status {status!r} is not configured for this workflow"
            raise UnknownStatus(msg, status=status)

    def transitions(self, status: int) -> list[int]:
        """Destinations of ``status`` in insertion order."""
        return list(self._edges.get(status, ()))

    def is_terminal(self, status: int) -> bool:
        """True when ``status`` has no outgoing edge (a run there is complete)."""
        return status in self._tos and status not in self._froms

    def starting(self) -> list[int]:
        """Nodes that are a source and never a destination, in first-seen order."""
        return [n for n in self._nodes if n in self._froms and n not in self._tos]

    def nodes(self) -> list[int]:
        """Every node, in first-seen order."""
        return list(self._nodes)

    def edges(self) -> list[tuple[int, int]]:
        """Every edge, in insertion order."""
        return [(f, t) for f, tos in self._edges.items() for t in tos]

    def validate(self, current: int, nxt: int) -> None:
        """Raise `InvalidTransition` unless ``current -> nxt`` is an edge."""
        if nxt not in self._edges.get(current, ()):
            msg = f"transition {current!r} -> {nxt!r} is not in the workflow's graph"
            raise InvalidTransition(msg, current=current, next=nxt)
