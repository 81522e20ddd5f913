"""The workflows, objects and recorders the whole suite shares: start here to read a test.

Two models:

* the feature model (`Status`, `Order`, `Calls`...): one status enum serves every
  workflow of the feature suite; each workflow uses a subset, so a member its graph does
  not use is a "status outside the graph" for that workflow;
* the counting workflows (`Stage`, `Item`, `two_steps`, `three_steps`): each step adds 1
  to ``item.steps``, so a run that went through every step exactly once is easy to see.
  The runtime, crash, restart and outage tests use them, and so do the child node
  scripts (``tests/crash/crash_node.py``, ``tests/adapters/kafka/kafka_node.py``).
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import actorflow as af

# -- the feature model -------------------------------------------------------------------

# The fake clock's start.
T0 = datetime(2024, 1, 1, tzinfo=UTC)

# Quick processes for tests: poll often, retry a failed step almost at once.
FAST = af.Options(polling_frequency=0.02, err_backoff=0.02)


class Status(enum.IntEnum):
    STARTED = 1
    CHARGED = 2
    SHIPPED = 3
    DONE = 4
    AWAITING = 5
    APPROVED = 6
    REJECTED = 7
    EXPIRED = 8
    UNUSED = 99


@dataclasses.dataclass
class Order:
    id: str = ""
    amount: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Unencodable:
    """An object JSON cannot hold: a set of plain objects."""

    id: str = ""
    things: set[object] = dataclasses.field(default_factory=set)


class Calls:
    """A thread-safe log of the user functions the engine called: (label, run id, thread name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, str, str]] = []

    def add(self, label: str, run_id: str) -> int:
        """Log one call; returns how often ``label`` was called for ``run_id`` so far."""
        with self._lock:
            self._calls.append((label, run_id, threading.current_thread().name))
            return sum(1 for c in self._calls if c[0] == label and c[1] == run_id)

    def count(self, label: str, run_id: str | None = None) -> int:
        """How often ``label`` was called (for ``run_id``, when given)."""
        with self._lock:
            return sum(1 for c in self._calls if c[0] == label and (run_id is None or c[1] == run_id))

    def per_run(self, label: str) -> Counter[str]:
        """Calls of ``label`` by run id."""
        with self._lock:
            return Counter(c[1] for c in self._calls if c[0] == label)

    def threads(self, label: str) -> set[str]:
        """The threads ``label`` ran on."""
        with self._lock:
            return {c[2] for c in self._calls if c[0] == label}


# -- the counting workflows --------------------------------------------------------------


class Stage(enum.IntEnum):
    STARTED = 1
    FIRST = 2
    SECOND = 3
    DONE = 4


@dataclasses.dataclass
class Item:
    id: str = ""
    steps: int = 0


StepFunc = Callable[[af.Run[Item, Stage]], Stage]


def counting_step(to: Stage, calls: list[tuple[str, Stage]] | None = None) -> StepFunc:
    """A step that counts itself in the object and moves the run to ``to`` (noting (run id, status) in ``calls``)."""

    def step(run: af.Run[Item, Stage]) -> Stage:
        if calls is not None:
            calls.append((run.run_id, run.status))
        run.object.steps += 1
        return to

    return step


def two_steps(name: str, *, parallel: int = 1, calls: list[tuple[str, Stage]] | None = None) -> af.Builder[Item, Stage]:
    """STARTED -> FIRST -> DONE; ``parallel`` shards on STARTED; ``calls`` notes every step run."""
    b = af.Builder(name, Item, Stage)
    b.add_step(Stage.STARTED, counting_step(Stage.FIRST, calls), Stage.FIRST).with_options(parallel_count=parallel)
    b.add_step(Stage.FIRST, counting_step(Stage.DONE, calls), Stage.DONE)
    return b


def three_steps(
    name: str,
    *,
    parallel: int = 1,
    first: StepFunc | None = None,
    first_pause_after: int = 0,
    calls: list[tuple[str, Stage]] | None = None,
) -> af.Builder[Item, Stage]:
    """STARTED -> FIRST -> SECOND -> DONE.

    ``parallel`` shards on FIRST; ``first`` replaces the first step, which pauses a run
    after ``first_pause_after`` errors when given; ``calls`` notes every step run.
    """
    b = af.Builder(name, Item, Stage)
    step = b.add_step(Stage.STARTED, first or counting_step(Stage.FIRST, calls), Stage.FIRST)
    if first_pause_after:
        step.with_options(pause_after_err_count=first_pause_after)
    b.add_step(Stage.FIRST, counting_step(Stage.SECOND, calls), Stage.SECOND).with_options(parallel_count=parallel)
    b.add_step(Stage.SECOND, counting_step(Stage.DONE, calls), Stage.DONE)
    return b
