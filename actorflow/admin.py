"""Operate on stored runs without the workflows' code: browse, inspect, pause, resume, cancel, delete.

`RunsAdmin` works on a record store alone (what ``actorflow runs`` and the web UI open
from a DSN). Status names come from the records themselves (the name the engine stored
with each version), and every run-state change follows the engine's own controller
(`actorflow.engine.actions.control_run_state`): the same transition table, the same
version rule, the same retry when a node moved the run meanwhile.

A change is published where the workflow's nodes read events: when the store's database
also holds an event log that the workflow uses (`OwnEventLog`), the event goes into that
log in the record's transaction, as the nodes' own writes do; otherwise into the outbox,
which the nodes' relay sends on (to Kafka, say).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from actorflow.capabilities import DirectPublisher, OwnEventLog, RecordPage, RecordPages, RunCount, Snapshots
from actorflow.clock import Clock, SystemClock
from actorflow.engine.actions import control_run_state
from actorflow.engine.transitions import Write, next_version
from actorflow.errors import ActorflowError, InvalidRunStateTransition, RecordNotFound
from actorflow.protocols import EventStreamer, Order, RecordFilter, RecordStore
from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.topics import delete_topic, run_state_change_topic, topic

__all__ = [
    "ACTIONS",
    "ACTION_DONE",
    "RUN_STATE_NAMES",
    "InvalidFilter",
    "RunsAdmin",
    "object_for_people",
    "parse_filter",
    "summary",
]

logger = logging.getLogger("actorflow")

ACTIONS: dict[str, RunState] = {
    "pause": RunState.PAUSED,
    "resume": RunState.RUNNING,
    "cancel": RunState.CANCELLED,
    "delete": RunState.REQUESTED_DATA_DELETED,
}
"""Each action a tool offers, and the run state it moves a run to."""

ACTION_DONE: dict[str, str] = {
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "delete": "data deletion requested",
}
"""What each action did, as a tool reports it ("paused RUN_ID")."""

_PAGE = 500  # runs read per page when acting on every run that matches a filter

RUN_STATE_NAMES: dict[str, RunState] = {
    str(state).lower().replace(" ", "-"): state for state in RunState if state.valid
}
"""Each run state by the name a person types (``paused``, ``data-deleted``)."""


class InvalidFilter(ActorflowError, ValueError):
    """A filter a person gave that means nothing: an unknown run state, a time that is not one."""


def _run_state(text: str) -> RunState:
    key = text.strip().lower().replace(" ", "-").replace("_", "-")
    found = RUN_STATE_NAMES.get(key)
    if key.isdigit():
        found = next((state for state in RUN_STATE_NAMES.values() if int(state) == int(key)), None)
    if found is None:
        msg = f"{text!r} is not a run state; one of {', '.join(RUN_STATE_NAMES)}"
        raise InvalidFilter(msg)
    return found


def _time(what: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-12-07T14:00:00+00:00)"
        raise InvalidFilter(msg) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_filter(
    *,
    statuses: Iterable[str] = (),
    run_states: Iterable[str] = (),
    foreign_id_prefix: str = "",
    since: str = "",
    until: str = "",
) -> RecordFilter:
    """The filter a person typed: a status is a number or the name the engine stored; times are ISO 8601 (UTC if naive).

    Raises `InvalidFilter` for a run state or time that is not one. Empty values are no condition.
    """
    given = [s.strip() for s in statuses if s.strip()]
    return RecordFilter(
        statuses=tuple(int(s) for s in given if s.isdigit()),
        status_names=tuple(s for s in given if not s.isdigit()),
        run_states=tuple(_run_state(r) for r in run_states if r.strip()),
        foreign_id_prefix=foreign_id_prefix,
        created_after=_time("since", since) if since.strip() else None,
        created_before=_time("until", until) if until.strip() else None,
    )


def object_for_people(record: Record) -> Any:
    """The run's object to show: its JSON value, ``None`` once deleted, or its bytes in base64 when not JSON."""
    if record.run_state is RunState.DATA_DELETED:
        return None
    try:
        return json.loads(record.object)
    except (UnicodeDecodeError, ValueError):
        return {"base64": base64.b64encode(record.object).decode("ascii")}


def summary(record: Record) -> dict[str, Any]:
    """The run's fields as JSON values (without its object)."""
    return {
        "run_id": record.run_id,
        "workflow": record.workflow_name,
        "foreign_id": record.foreign_id,
        "status": record.status,
        "status_name": record.meta.status_description,
        "run_state": str(record.run_state),
        "version": record.meta.version,
        "reason": record.meta.run_state_reason,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


class RunsAdmin:
    """Browse and control the runs of one record store (see the module docstring).

    Args:
        store: the record store (its database is the one the nodes use).
        events: an event streamer on the same database, used to publish a change into
            its log when the workflow's nodes read from it; ``None``: always the outbox.
        clock: stamps ``updated_at`` of the versions written.
    """

    def __init__(self, store: RecordStore, *, events: EventStreamer | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self._events = events
        self._clock = clock or SystemClock()
        self._routed: set[str] = set()

    # -- reading ------------------------------------------------------------------------

    def page(
        self,
        workflow_name: str = "",
        *,
        filter: RecordFilter | None = None,  # noqa: A002 - as in RecordStore.list
        limit: int = 50,
        order: Order = "desc",
        after: str | None = None,
    ) -> RecordPage:
        """A page of runs, newest first by default; ``after`` is the previous page's ``next``."""
        return self._pages().page(workflow_name, limit=limit, order=order, filter=filter, after=after)

    def counts(self, workflow_name: str = "", *, filter: RecordFilter | None = None) -> list[RunCount]:  # noqa: A002
        """How many runs are at each (workflow, status, run state)."""
        return self._pages().count_runs(workflow_name, filter=filter)

    def matching(self, workflow_name: str = "", *, filter: RecordFilter | None = None) -> Iterator[Record]:  # noqa: A002
        """Every run that matches, oldest first, read a page at a time."""
        after: str | None = None
        while True:
            page = self.page(workflow_name, filter=filter, limit=_PAGE, order="asc", after=after)
            yield from page.records
            if page.next is None:
                return
            after = page.next

    def get(self, run_id: str) -> Record:
        """The run's current record; `RecordNotFound` when there is none."""
        return self.store.lookup(run_id)

    def history(self, run_id: str) -> list[Record]:
        """Every stored version of the run, oldest first (only the current one if the store keeps none)."""
        if isinstance(self.store, Snapshots):
            versions = self.store.snapshots(run_id)
            if versions:
                return versions
        return [self.store.lookup(run_id)]

    # -- acting -------------------------------------------------------------------------

    def act(self, action: str, run_id: str, reason: str = "") -> Record:
        """Apply ``action`` (a key of `ACTIONS`) to the run; the version stored.

        Raises `RecordNotFound`, or `InvalidRunStateTransition` when the run's state does
        not allow it (a cancelled run cannot be paused), and stores nothing then.
        """
        state = ACTIONS.get(action)
        if state is None:
            msg = f"unknown action {action!r}; one of {', '.join(ACTIONS)}"
            raise ValueError(msg)
        return control_run_state(self.store.lookup, self._next(state, reason), self._store, run_id, state)

    def act_each(
        self, action: str, run_ids: Iterable[str], reason: str = ""
    ) -> Iterator[tuple[str, Record | RecordNotFound | InvalidRunStateTransition]]:
        """`act` on each run in turn: the version stored, or why that run was left as it was (the others go on)."""
        for run_id in run_ids:
            try:
                yield run_id, self.act(action, run_id, reason)
            except (RecordNotFound, InvalidRunStateTransition) as exc:
                yield run_id, exc

    def pause(self, run_id: str, reason: str = "") -> Record:
        """Pause the run: its steps stop until `resume`."""
        return self.act("pause", run_id, reason)

    def resume(self, run_id: str) -> Record:
        """Resume a paused run: a node runs its current step again."""
        return self.act("resume", run_id)

    def cancel(self, run_id: str, reason: str = "") -> Record:
        """Cancel the run: it is finished and never runs a step again."""
        return self.act("cancel", run_id, reason)

    def delete_data(self, run_id: str, reason: str = "") -> Record:
        """Ask for the run's data to be deleted (a node's delete process replaces its object)."""
        return self.act("delete", run_id, reason)

    def _next(self, state: RunState, reason: str | None) -> Callable[[Record], Write]:
        def make(record: Record) -> Write:
            self._route(record)
            return next_version(record, run_state=state, now=self._clock.now(), reason=reason)

        return make

    def _store(self, write: Write) -> None:
        self.store.store(write.record)

    def _route(self, record: Record) -> None:
        """Publish this workflow's changes into the database's event log if its nodes read there (once per workflow)."""
        name = record.workflow_name
        if name in self._routed:
            return
        store, events = self.store, self._events
        if isinstance(store, OwnEventLog) and isinstance(store, DirectPublisher) and events is not None:
            topics = [topic(name, record.status), run_state_change_topic(name), delete_topic(name)]
            if store.carries_events_of(name, topics) and store.publish_directly(name, events):
                logger.debug("%s: changes published into the database's event log", name)
        self._routed.add(name)

    def _pages(self) -> RecordPages:
        if not isinstance(self.store, RecordPages):
            msg = f"{type(self.store).__name__} cannot page through runs (it has no RecordPages)"
            raise ActorflowError(msg)
        return self.store
