"""The 3-step workflow the crash, restart and outage tests share.

Imported by its basename (``from three_steps import ...``): tests/ is on ``sys.path``
under pytest, and the child node scripts put it there themselves.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

import actorflow as af


class Status(enum.IntEnum):
    STARTED = 1
    FIRST = 2
    SECOND = 3
    DONE = 4


@dataclasses.dataclass
class Item:
    id: str = ""
    steps: int = 0


StepFunc = Callable[[af.Run[Item, Status]], Status]


def counting_step(to: Status) -> StepFunc:
    """A step that counts itself in the object and moves the run to ``to``."""

    def step(run: af.Run[Item, Status]) -> Status:
        run.object.steps += 1
        return to

    return step


def three_steps(
    name: str, *, parallel: int = 1, first: StepFunc | None = None, first_pause_after: int = 0
) -> af.Builder[Item, Status]:
    """STARTED -> FIRST -> SECOND -> DONE.

    ``parallel`` shards on FIRST; ``first`` replaces the first step, which pauses a run
    after ``first_pause_after`` errors when given.
    """
    b = af.Builder(name, Item, Status)
    step = b.add_step(Status.STARTED, first or counting_step(Status.FIRST), Status.FIRST)
    if first_pause_after:
        step.with_options(pause_after_err_count=first_pause_after)
    b.add_step(Status.FIRST, counting_step(Status.SECOND), Status.SECOND).with_options(parallel_count=parallel)
    b.add_step(Status.SECOND, counting_step(Status.DONE), Status.DONE)
    return b
