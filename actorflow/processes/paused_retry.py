"""Paused-run retry: resumes a paused run once it has stayed paused for ``pause_retry``."""

from __future__ import annotations

from actorflow.event import Event
from actorflow.processes.consumer import EventConsumer, Outcome, Skipped
from actorflow.runstate import RunState

__all__ = ["PausedRetry"]


class PausedRetry(EventConsumer):
    """Reads Paused run-state changes with a consume lag of ``pause_retry``; resumes the run.

    Unlike the original, a pause event is matched to the record by version: if the run
    was paused again later, that later pause has its own event and its own full wait.
    """

    run_state_filter = int(RunState.PAUSED)

    def handle(self, event: Event) -> Outcome:
        """Resume the run if it is still in the pause this event announced."""
        record = self.lookup(event)
        if isinstance(record, Skipped):
            return record
        if record.run_state is not RunState.PAUSED:
            return Skipped("record status not in expected state")
        version = self.event_version(event)
        if version is not None and record.meta.version != version:
            return Skipped("event record version lower than latest record version")
        return self.engine.transitions.next(record, run_state=RunState.RUNNING, reason="")
