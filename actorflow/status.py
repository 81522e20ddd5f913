"""Statuses: the user's IntEnum, the reserved values and the sentinels steps return."""

from __future__ import annotations

import enum
import re
from typing import Self

__all__ = ["RESERVED", "RUN_STATE_UPDATED", "SAVE_AND_REPEAT", "SKIP", "Sentinel", "status_name"]


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

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def status_name(status: int) -> str:
    """The human name of a status: ``Status.ORDER_PLACED`` -> ``Order Placed``."""
    if isinstance(status, enum.Enum):
        name = str(status.name)
        if name.isupper() or "_" in name:
            return " ".join(part.capitalize() for part in name.split("_") if part)
        return _CAMEL.sub(" ", name)
    return str(int(status))
