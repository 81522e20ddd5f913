"""Cron schedules: trigger a foreign id at every slot while the workflow runs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from actorflow.cron import parse
from actorflow.engine import actions
from actorflow.errors import RecordNotFound, WorkflowInProgress
from actorflow.processes.base import Process

if TYPE_CHECKING:
    from actorflow.specs import ScheduleSpec

__all__ = ["ScheduleProcess"]


class ScheduleProcess(Process):
    """One per schedule (role ``<workflow>-<foreign id>-scheduler-<spec>``).

    The first slot is counted from the latest run of the foreign id, so slots missed
    while no node ran the schedule are fired once, not once each.
    """

    def __init__(self, *args: Any, spec: ScheduleSpec[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self._next = parse(spec.spec)
        self._last: datetime | None = None

    def start(self) -> None:
        """Recompute the last slot from the store (another node may have fired since)."""
        self._last = None

    def tick(self, budget: float) -> None:
        """Fire the schedule if its slot has come, else wait for it."""
        if self.backing_off(budget):
            return
        clock = self.engine.clock
        now = clock.now()
        if self._last is None:
            try:
                self._last = self.engine.record_store.latest(self.engine.name, self.spec.foreign_id).created_at
            except RecordNotFound:
                self._last = self.spec.registered_at or now
        slot = self._next(self._last)
        if now < slot:
            clock.wait_until(slot, timeout=budget)
            return
        try:
            if self.spec.filter is None or self.spec.filter(now):
                actions.trigger(self.engine, self.spec.foreign_id, self.spec.initial_value)
        except WorkflowInProgress:
            pass  # the previous run is still going: this slot is skipped
        except Exception as exc:  # noqa: BLE001 - a user filter or a trigger failed: retried after the back-off
            self.log.warning("%s/%s: scheduled trigger failed: %s", self.engine.name, self.name, exc)
            self.metrics.error()
            self.back_off(self.options.err_backoff)
            return
        self._last = now
