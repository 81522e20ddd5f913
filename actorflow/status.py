"""Statuses: the user's IntEnum, the reserved values and the sentinels steps return."""

from __future__ import annotations

import enum
import re
from typing import Self

from actorflow.errors import StatusTypeError

__all__ = [
    "RESERVED",
    "RUN_STATE_UPDATED",
    "SAVE_AND_REPEAT",
    "SKIP",
    "Sentinel",
    "status_name",
    "status_value",
]


class Sentinel(int):
    """A step result that is not a status: skip, run-state updated, or save-and-repeat."""

    label: str

    def __new__(cls, value: int, label: str) -> Self:
        """A sentinel with the original's value and a readable label."""
        obj = super().__new__(cls, value)
        obj.label = label
        return obj

    def __repr__(self) -> str:
        return f"<{self.label}>"


# The original's values: 0 = skip, -1 = a run-state update already happened, -2 = repeat.
SKIP = Sentinel(0, "skip")
RUN_STATE_UPDATED = Sentinel(-1, "run-state updated")
SAVE_AND_REPEAT = Sentinel(-2, "save and repeat")
RESERVED = frozenset({0, -1, -2})


def status_value(status: object, status_type: type[enum.IntEnum], argument: str) -> int:
    """The value of ``status`` given as ``argument`` to a workflow of ``status_type``.

    A member of ``status_type`` or a plain int (kept for callers that store statuses as
    numbers; whether the value is a status of the graph is checked after) is accepted.
    Another enum's member is refused even when its value is a status of the workflow,
    as are bools and non-ints: `StatusTypeError` (a `TypeError`).
    """
    if isinstance(status, status_type):
        return int(status)
    if isinstance(status, enum.Enum):
        msg = (
            f"{argument}={type(status).__name__}.{status.name} is a member of {type(status).__name__}, "
            f"not of the workflow's status enum {status_type.__name__}"
        )
        raise StatusTypeError(msg, status=status, status_type=status_type)
    if not isinstance(status, int) or isinstance(status, bool):
        msg = f"{argument} must be a {status_type.__name__} (or its int value), got {status!r}"
        raise StatusTypeError(msg, status=status, status_type=status_type)
    return int(status)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def status_name(status: int) -> str:
    """The human name of a status: ``Status.ORDER_PLACED`` -> ``Order Placed``."""
    if isinstance(status, enum.Enum):
        name = str(status.name)
        if name.isupper() or "_" in name:
            return " ".join(part.capitalize() for part in name.split("_") if part)
        return _CAMEL.sub(" ", name)
    return str(int(status))
