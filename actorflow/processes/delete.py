"""Data deletion: replaces the object of a run whose data deletion was requested."""

from __future__ import annotations

from typing import Any

from actorflow.codec import DELETED_OBJECT
from actorflow.event import Event
from actorflow.processes.consumer import EventConsumer, Outcome, Retry, Skipped
from actorflow.runstate import RunState

__all__ = ["DELETED_OBJECT", "DeleteConsumer"]


class DeleteConsumer(EventConsumer):
    """Reads ``<workflow>-delete``; stores the run as Data Deleted with its object replaced.

    The replacement is the workflow's ``custom_delete(object)`` when given, else the
    original's ``{"result":"deleted"}``.
    """

    def handle(self, event: Event) -> Outcome:
        """Delete the run's data if its deletion is still requested."""
        record = self.lookup(event)
        if isinstance(record, Skipped):
            return record
        if record.run_state is not RunState.REQUESTED_DATA_DELETED:
            return Skipped("record status not in expected state")
        config = self.engine.config
        custom: Any = config.custom_delete
        if custom is None:
            data = DELETED_OBJECT
        else:
            try:
                data = config.codec.encode(custom(config.codec.decode(record.object)))
            except Exception as exc:  # noqa: BLE001 - a user delete function failed: retry
                self.log.warning(
                    "%s/%s: custom delete failed for run %s: %s",
                    self.engine.name,
                    self.name,
                    record.run_id,
                    exc,
                    extra={"run_id": record.run_id, "foreign_id": record.foreign_id},
                )
                self.metrics.error()
                return Retry(self.options.err_backoff)
        return self.engine.transitions.next(record, run_state=RunState.DATA_DELETED, data=data)
