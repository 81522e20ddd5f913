"""The workflow the UI tests browse: a step that holds some runs, a callback, a finishing step.

``workflow`` is built on the SQLite file named by ``ACTORFLOW_UI_TEST_DB`` when this module
is loaded as ``--app tests.ui.flow:workflow`` by ``actorflow ui`` in a child process.
"""

from __future__ import annotations

import json
import os

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from tests.model import FAST, Order, Status

NAME = "ui-orders"


def charge(run: af.Run[Order, Status]) -> Status:
    if run.object.amount > 1000:
        return run.pause("large order: review it")
    return Status.CHARGED


def approve(run: af.Run[Order, Status], payload: bytes) -> Status:
    run.object.notes.append(json.loads(payload).get("note", ""))
    return Status.APPROVED


def builder() -> af.Builder[Order, Status]:
    """STARTED --charge--> CHARGED --ship--> SHIPPED --finish--> DONE; AWAITING --callback--> APPROVED."""
    b = af.Builder(NAME, Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.SHIPPED, Status.SHIPPED)
    b.add_step(Status.SHIPPED, lambda run: Status.DONE, Status.DONE)
    b.add_callback(Status.AWAITING, approve, Status.APPROVED)
    return b


def build(path: str) -> af.Workflow[Order, Status]:
    """The workflow on the SQLite file ``path`` (records and events in it)."""
    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore

    return builder().build(
        SqliteEventStreamer(path),
        SqliteRecordStore(path),
        MemoryRoleScheduler(),
        timeout_store=SqliteTimeoutStore(path),
        defaults=FAST,
    )


if "ACTORFLOW_UI_TEST_DB" in os.environ:
    workflow = build(os.environ["ACTORFLOW_UI_TEST_DB"])
