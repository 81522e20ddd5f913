"""Process states, as the original reports them (plus FAILED)."""

from __future__ import annotations

import enum

__all__ = ["ProcessState"]


class ProcessState(enum.IntEnum):
    """State of one background process on this node.

    IDLE: waiting for its role. RUNNING: holds its role and works. SHUTDOWN: stopped.
    FAILED: crashed more often than the restart intensity allows; it is still
    restarted, at the longest back-off, and becomes RUNNING again once it holds.
    """

    UNKNOWN = 0
    SHUTDOWN = 1
    RUNNING = 2
    IDLE = 3
    FAILED = 4

    def __str__(self) -> str:
        return self.name.capitalize()
