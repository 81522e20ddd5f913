"""The workflows the runtime tests share (imported by basename: tests have no packages)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

import actorflow as af


class Status(enum.IntEnum):
    STARTED = 1
    MIDDLE = 2
    DONE = 3


@dataclasses.dataclass
class Item:
    id: str = ""
    steps: int = 0


def _count(to: Status) -> Callable[[af.Run[Item, Status]], Status]:
    def step(run: af.Run[Item, Status]) -> Status:
        run.object.steps += 1
        return to

    return step


def two_step_builder(name: str) -> af.Builder[Item, Status]:
    b = af.Builder(name, Item, Status)
    b.add_step(Status.STARTED, _count(Status.MIDDLE), Status.MIDDLE)
    b.add_step(Status.MIDDLE, _count(Status.DONE), Status.DONE)
    return b


def eventually(predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition") -> None:
    """Wait until ``predicate()`` holds (checked every 10 ms), failing after ``timeout``."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"{message} did not happen within {timeout}s"
            raise AssertionError(msg)
        tick.wait(0.01)
