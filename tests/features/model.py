"""The statuses, objects and small recorders the feature tests share.

One status enum serves every workflow of the suite; each workflow uses a subset, so a
member its graph does not use is a "status outside the graph" for that workflow.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections import Counter
from datetime import UTC, datetime

import actorflow as af

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
