"""The shape of the code is part of the suite: no import circles, no reaches into private members.

The middle of the engine was once one import circle of 17 modules held together by
type-only imports, with processes reading the workflow's private members. These checks
keep it from growing back. `python -m tests.test_architecture` prints the figures.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where each top-level folder is installed (adapters/ is actorflow.adapters).
PACKAGES = {"actorflow": "actorflow", "adapters": "actorflow.adapters"}
MAX_CIRCLE = 2  # a deprecated re-export may keep one two-module circle until its removal
MAX_CORE_WAIVERS = 3


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module of ours ``module`` imports: at the top, in functions, under TYPE_CHECKING alike."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub
                elif target in known:
                    yield target


def import_circles() -> list[list[str]]:
    """The strongly connected components of the import graph with more than one module, largest first."""
    known = _modules()
    graph = {m: sorted(set(_imported(m, p, known)) - {m}) for m, p in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    return sorted(circles, key=len, reverse=True)


def core_waivers() -> list[str]:
    """Every ``noqa: SLF001`` in the core package (outside actorflow/testing/), as ``path:line``."""
    found = []
    for path in sorted((ROOT / "actorflow").rglob("*.py")):
        if "testing" in path.relative_to(ROOT / "actorflow").parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"noqa:[^#]*SLF001", line):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_no_import_circle_is_larger_than_two_modules():
    """actorflow/ + adapters/: the largest import circle (type-only and deferred imports count)."""
    circles = import_circles()
    assert not circles or len(circles[0]) <= MAX_CIRCLE, f"import circles: {circles}"


def test_the_core_reaches_into_no_private_member():
    """At most three SLF001 waivers in the core, and none in the ruff configuration."""
    waivers = core_waivers()
    assert len(waivers) <= MAX_CORE_WAIVERS, waivers
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lint = config["tool"]["ruff"]["lint"]
    ignored = [*lint.get("ignore", []), *(c for codes in lint.get("per-file-ignores", {}).values() for c in codes)]
    assert "SLF001" not in ignored, "SLF001 is ignored in pyproject.toml"


if __name__ == "__main__":
    circles = import_circles()
    print(f"largest import circle: {len(circles[0]) if circles else 1} module(s)")
    for circle in circles:
        print(f"  {len(circle)}: {', '.join(circle)}")
    waivers = core_waivers()
    print(f"SLF001 waivers in the core: {len(waivers)}")
    for waiver in waivers:
        print(f"  {waiver}")
