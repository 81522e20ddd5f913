"""`mermaid`: a workflow's graph as a Mermaid ``stateDiagram-v2``."""

from __future__ import annotations

from typing import Any, Protocol

from actorflow.graph import Graph

__all__ = ["Drawable", "mermaid"]

_DIRECTIONS = frozenset({"LR", "TB", "RL", "BT"})


class Drawable(Protocol):
    """What `mermaid` draws: a workflow (its graph, and its engine to name the statuses)."""

    @property
    def graph(self) -> Graph:
        """The statuses and their transitions."""
        ...

    @property
    def engine(self) -> Any:
        """The workflow's engine (``engine.transitions.describe`` names a status)."""
        ...


def _node_id(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def mermaid(wf: Drawable, direction: str = "LR") -> str:
    """The workflow's statuses and transitions as Mermaid ``stateDiagram-v2`` source.

    Starting statuses come from ``[*]``, terminal ones lead to ``[*]``; a status with
    several destinations branches through a ``<<choice>>`` state (as the original draws).
    """
    if direction not in _DIRECTIONS:
        msg = f"direction must be one of {sorted(_DIRECTIONS)}, got {direction!r}"
        raise ValueError(msg)
    graph = wf.graph
    names = {n: wf.engine.transitions.describe(n) for n in graph.nodes()}
    ids = {n: _node_id(name) for n, name in names.items()}
    lines = ["stateDiagram-v2", f"\tdirection {direction}", ""]
    lines.extend(f"\t{ids[node]}: {names[node]}" for node in graph.nodes())
    lines.append("")
    lines.extend(f"\t[*] --> {ids[start]}" for start in graph.starting())
    for node in graph.nodes():
        destinations = graph.transitions(node)
        if len(destinations) > 1:
            choice = f"{ids[node]}_branching"
            lines.append(f"\tstate {choice} <<choice>>")
            lines.append(f"\t{ids[node]} --> {choice}")
            lines.extend(f"\t{choice} --> {ids[d]}" for d in destinations)
        else:
            lines.extend(f"\t{ids[node]} --> {ids[d]}" for d in destinations)
    lines.extend(f"\t{ids[node]} --> [*]" for node in graph.nodes() if graph.is_terminal(node))
    return "\n".join(lines) + "\n"
