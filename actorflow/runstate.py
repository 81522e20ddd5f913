"""Run states: the lifecycle of one run, with the original's codes and transition table."""

from __future__ import annotations

import enum

from actorflow.errors import InvalidRunStateTransition

__all__ = ["RunState", "check_run_state_transition"]


class RunState(enum.IntEnum):
    """Lifecycle state of a run. The integer codes are the original's (wire compatible)."""

    UNKNOWN = 0
    INITIATED = 1
    RUNNING = 2
    PAUSED = 3
    CANCELLED = 4
    COMPLETED = 5
    DATA_DELETED = 6
    REQUESTED_DATA_DELETED = 7

    def __str__(self) -> str:
        return _NAMES[self]

    @property
    def valid(self) -> bool:
        """True for every real state (not UNKNOWN)."""
        return self is not RunState.UNKNOWN

    @property
    def finished(self) -> bool:
        """True when the run will never run a step again."""
        return self in _FINISHED

    @property
    def stopped(self) -> bool:
        """True when steps must not run for the run (paused, cancelled, data deleted)."""
        return self in _STOPPED


_NAMES = {
    RunState.UNKNOWN: "Unknown",
    RunState.INITIATED: "Initiated",
    RunState.RUNNING: "Running",
    RunState.PAUSED: "Paused",
    RunState.CANCELLED: "Cancelled",
    RunState.COMPLETED: "Completed",
    RunState.DATA_DELETED: "Data Deleted",
    RunState.REQUESTED_DATA_DELETED: "Requested Data Deleted",
}

_FINISHED = frozenset(
    {
        RunState.CANCELLED,
        RunState.COMPLETED,
        RunState.DATA_DELETED,
        RunState.REQUESTED_DATA_DELETED,
    }
)
_STOPPED = frozenset(
    {
        RunState.PAUSED,
        RunState.CANCELLED,
        RunState.DATA_DELETED,
        RunState.REQUESTED_DATA_DELETED,
    }
)

# The controller's table (pause, resume, cancel, delete_data); steps bypass it.
_ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.INITIATED: frozenset({RunState.RUNNING, RunState.PAUSED}),
    RunState.RUNNING: frozenset({RunState.PAUSED, RunState.CANCELLED, RunState.COMPLETED}),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.CANCELLED}),
    RunState.COMPLETED: frozenset({RunState.REQUESTED_DATA_DELETED}),
    RunState.CANCELLED: frozenset({RunState.REQUESTED_DATA_DELETED}),
    RunState.REQUESTED_DATA_DELETED: frozenset({RunState.DATA_DELETED}),
    RunState.DATA_DELETED: frozenset({RunState.REQUESTED_DATA_DELETED}),
}


def check_run_state_transition(current: RunState, new: RunState, *, run_id: str = "") -> None:
    """Raise `InvalidRunStateTransition` unless the controller may move ``current`` to ``new``."""
    if new not in _ALLOWED.get(current, frozenset()):
        msg = f"invalid RunState: from {current} | to {new}"
        raise InvalidRunStateTransition(msg, run_id=run_id, current=current, new=new)
