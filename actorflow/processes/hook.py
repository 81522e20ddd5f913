"""Run-state hooks: ``on_pause``, ``on_cancel``, ``on_complete``, one process per hooked state."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from actorflow.event import Event
from actorflow.processes.consumer import EventConsumer, Outcome, Retry, Skipped

if TYPE_CHECKING:
    from actorflow.runstate import RunState
    from actorflow.specs import HookFunc

__all__ = ["HookConsumer"]


class HookConsumer(EventConsumer):
    """Reads run-state changes to one state and calls the user's hook with the record.

    The hook sees the record as it is when the event is handled (as in the original). A
    hook that raises is retried after the back-off; that run's later events wait behind it.
    """

    def __init__(self, *args: Any, state: RunState, hook: HookFunc, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_state_filter = int(state)
        self.hook = hook

    def handle(self, event: Event) -> Outcome:
        """Call the hook for the event's run."""
        record = self.lookup(event)
        if isinstance(record, Skipped):
            return record
        typed = self.engine.transitions.typed_or_none(record)
        if typed is None:
            return Skipped("unable to unmarshal object")
        try:
            result = self.hook(typed)
            if inspect.isawaitable(result):  # an async def hook: run on the engine's loop
                self.engine.run_awaitable(result)
        except Exception as exc:  # noqa: BLE001 - a user hook failed: retry it
            self.log.warning(
                "%s/%s: hook failed for run %s: %s",
                self.engine.name,
                self.name,
                record.run_id,
                exc,
                extra={"run_id": record.run_id, "foreign_id": record.foreign_id},
            )
            self.metrics.error()
            return Retry(self.options.err_backoff)
        return None
