"""A workflow's graph laid out for an SVG drawn by the server (no diagram library in the browser).

Statuses are placed in columns by their distance from a starting status (breadth first),
in the graph's order within a column; an edge to a later column is a curve to the right,
any other (a loop back, a step within a column) a curve below the boxes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from actorflow.graph import Graph

__all__ = ["Box", "Diagram", "Edge", "layout"]

WIDTH, HEIGHT = 170, 54
GAP_X, GAP_Y, MARGIN = 70, 34, 16


@dataclasses.dataclass(frozen=True, slots=True)
class Box:
    """A status: where it is drawn, its name, and how many runs are at it now."""

    status: int
    name: str
    x: int
    y: int
    runs: int
    start: bool
    terminal: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    """A transition, as an SVG path."""

    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class Diagram:
    """What the template draws."""

    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int
    box_width: int = WIDTH
    box_height: int = HEIGHT


def _columns(graph: Graph) -> dict[int, int]:
    column: dict[int, int] = {}
    frontier = list(graph.starting())
    for status in frontier:
        column[status] = 0
    while frontier:
        following = []
        for status in frontier:
            for nxt in graph.transitions(status):
                if nxt not in column:
                    column[nxt] = column[status] + 1
                    following.append(nxt)
        frontier = following
    for status in graph.nodes():
        column.setdefault(status, 0)  # not reachable from a start: first column
    return column


def layout(graph: Graph, names: Mapping[int, str], runs: Mapping[int, int]) -> Diagram:
    """Boxes and edges for ``graph``; ``names`` of the statuses, ``runs`` at each (missing: 0)."""
    column = _columns(graph)
    rows: dict[int, int] = {}
    place: dict[int, tuple[int, int]] = {}
    starts = set(graph.starting())
    for status in graph.nodes():
        col = column[status]
        row = rows.get(col, 0)
        rows[col] = row + 1
        place[status] = (MARGIN + col * (WIDTH + GAP_X), MARGIN + row * (HEIGHT + GAP_Y))
    boxes = [
        Box(s, names.get(s, str(s)), *place[s], runs.get(s, 0), s in starts, graph.is_terminal(s))
        for s in graph.nodes()
    ]
    edges = []
    for src, dst in graph.edges():
        (x1, y1), (x2, y2) = place[src], place[dst]
        if column[dst] > column[src]:
            sx, sy, ex, ey = x1 + WIDTH, y1 + HEIGHT // 2, x2 - 4, y2 + HEIGHT // 2
            mid = (sx + ex) // 2
            edges.append(Edge(f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"))
        else:  # back or sideways: under the boxes
            sx, sy, ex, ey = x1 + WIDTH // 2, y1 + HEIGHT, x2 + WIDTH // 2 + 8, y2 + HEIGHT + 4
            low = max(sy, ey) + GAP_Y - 6
            edges.append(Edge(f"M{sx},{sy} C{sx},{low} {ex},{low} {ex},{ey}"))
    width = MARGIN * 2 + (max(column.values(), default=0) + 1) * (WIDTH + GAP_X) - GAP_X
    height = MARGIN * 2 + max(rows.values(), default=1) * (HEIGHT + GAP_Y)
    return Diagram(boxes, edges, width, height)
