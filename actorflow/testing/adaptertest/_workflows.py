"""The workflows the original's acceptance and connector cases run (``User``, ``SyncStatus``).

They run on the memory adapters except for the one under test, as the original's do; the
memory adapters are imported when a case runs, so importing a suite imports no adapter.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from actorflow.builder import Builder
from actorflow.clock import Clock
from actorflow.event import ConnectorEvent
from actorflow.protocols import ConnectorConstructor, EventStreamer
from actorflow.record import Run
from actorflow.workflow import Workflow

__all__ = [
    "EventStreamerFactory",
    "SyncStatus",
    "User",
    "connector_workflow",
    "make_streamer",
    "sync_user_workflow",
]

EventStreamerFactory = Callable[..., EventStreamer]
"""Makes a fresh event streamer: called with no argument, or ``clock=`` when it takes one."""

SYNC_USER = "sync user 2"
CONNECTOR_TEST = "connector-test"
EMAIL = "andrew@workflow.com"
CONNECTOR_EMAIL = "connector@workflow.com"


@dataclasses.dataclass
class User:
    """The object of the original's test workflows."""

    uid: str = ""
    email: str = ""
    country_code: str = ""


class SyncStatus(enum.IntEnum):
    """The statuses of the original's test workflows (``SyncStatus``)."""

    STARTED = 1
    EMAIL_SET = 2
    REGULATION_TIMEOUT = 3
    COMPLETED = 4


def make_streamer(factory: EventStreamerFactory, clock: Clock | None = None) -> EventStreamer:
    """Call the streamer factory, handing it ``clock`` when its signature takes one."""
    if clock is None:
        return factory()
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a callable without an introspectable signature
        return factory()
    if any(p.name == "clock" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return factory(clock=clock)
    return factory()


def _memory() -> Any:
    """The memory adapters, imported when a case runs, never with the suite.

    Imported by name: mypy checks ``adapters/`` as a top-level package and cannot see it
    under ``actorflow.adapters``, where the build maps it.
    """
    return importlib.import_module("actorflow.adapters.memory")


def _set_email(run: Run[User, SyncStatus]) -> SyncStatus:
    run.object.email = EMAIL
    return SyncStatus.EMAIL_SET


def _cool_down_timer(run: Run[Any, Any], now: datetime) -> datetime | None:
    # A one-hour cool-down period for users in Great Britain; none elsewhere.
    if run.object.country_code == "GB":
        return now + timedelta(hours=1)
    return None


def _cool_down_timeout(run: Run[User, SyncStatus], _now: datetime) -> SyncStatus:
    if run.object.email == EMAIL:
        return SyncStatus.REGULATION_TIMEOUT
    return run.skip()


def _generate_user_id(run: Run[User, SyncStatus]) -> SyncStatus:
    run.object.uid = str(uuid.uuid4())
    return SyncStatus.COMPLETED


def sync_user_workflow(streamer: EventStreamer, clock: Clock) -> Workflow[User, SyncStatus]:
    """The original's ``sync user 2`` acceptance workflow on ``streamer`` and memory adapters."""
    memory = _memory()
    b = Builder(SYNC_USER, User, SyncStatus)
    b.add_step(SyncStatus.STARTED, _set_email, SyncStatus.EMAIL_SET).with_options(
        polling_frequency=0.2, parallel_count=5
    )
    b.add_timeout(
        SyncStatus.EMAIL_SET, _cool_down_timer, _cool_down_timeout, SyncStatus.REGULATION_TIMEOUT
    ).with_options(polling_frequency=0.2)
    b.add_step(SyncStatus.REGULATION_TIMEOUT, _generate_user_id, SyncStatus.COMPLETED).with_options(
        polling_frequency=0.2, parallel_count=5
    )
    return b.build(
        streamer,
        memory.MemoryRecordStore(),
        memory.MemoryRoleScheduler(),
        timeout_store=memory.MemoryTimeoutStore(),
        clock=clock,
    )


def _connector_email(run: Run[User, SyncStatus]) -> SyncStatus:
    run.object.email = CONNECTOR_EMAIL
    return SyncStatus.EMAIL_SET


def _trigger_for(wf: Workflow[User, SyncStatus], event: ConnectorEvent) -> None:
    wf.trigger(event.foreign_id, User(uid=event.foreign_id))


def connector_workflow(constructor: ConnectorConstructor) -> Workflow[User, SyncStatus]:
    """The original's ``connector-test`` workflow: connector ``tester`` triggers a run per event."""
    memory = _memory()
    b = Builder(CONNECTOR_TEST, User, SyncStatus)
    b.add_connector("tester", constructor, _trigger_for)
    b.add_step(SyncStatus.STARTED, _connector_email, SyncStatus.EMAIL_SET)
    return b.build(memory.MemoryEventStreamer(), memory.MemoryRecordStore(), memory.MemoryRoleScheduler())
