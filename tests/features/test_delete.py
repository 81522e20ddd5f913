"""Data deletion: a finished run's object is replaced, and the run marked DATA_DELETED."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

import actorflow as af
from tests.model import Order, Status

CARD_NOTE = "card 4242"  # in the object _completed stores, and nowhere else


def _one_step() -> af.Builder[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    return b


def _completed(wf: af.Workflow[Order, Status]) -> str:
    run_id = wf.trigger("o-1", Order(id="o-1", amount=42, notes=[CARD_NOTE]))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    return run_id


def test_delete_data_requests_deletion(start):
    """delete_data on a completed run stores REQUESTED_DATA_DELETED with the reason."""
    wf = start(_one_step())
    run_id = _completed(wf)
    record = wf.delete_data(run_id, "gdpr request")
    assert record.run_state is af.RunState.REQUESTED_DATA_DELETED
    assert record.meta.run_state_reason == "gdpr request"


def test_deleted_data_is_replaced_by_the_default_placeholder(start, poll_until, run_state_of):
    """The delete process replaces the object with {"result":"deleted"} and marks the run DATA_DELETED."""
    wf = start(_one_step())
    run_id = _completed(wf)
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")
    record = wf.record_store.lookup(run_id)
    assert json.loads(record.object) == {"result": "deleted"}
    assert record.status == Status.DONE
    assert record.meta.version == 4  # trigger, done, requested, deleted


def test_custom_delete_decides_the_replacement(start, poll_until, run_state_of):
    """With custom_delete the replacement is the function's result for the old object."""
    wf = start(_one_step(), custom_delete=lambda order: Order(id=order.id, amount=0, notes=["redacted"]))
    run_id = _completed(wf)
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")
    assert wf.codec.decode(wf.record_store.lookup(run_id).object) == Order(id="o-1", amount=0, notes=["redacted"])


def test_data_of_a_cancelled_run_can_be_deleted(build, poll_until, run_state_of):
    """Cancelled runs are finished, so their data can be deleted too."""
    wf = build(_one_step())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    wf.pause(run_id, "hold")
    wf.cancel(run_id, "customer left")
    wf.delete_data(run_id, "gdpr request")
    wf.run()
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")


def test_delete_data_of_an_unfinished_run_is_refused(build):
    """An Initiated run's data cannot be deleted: InvalidRunStateTransition, nothing stored."""
    wf = build(_one_step())
    run_id = wf.trigger("o-1")
    before = wf.record_store.lookup(run_id)
    with pytest.raises(af.InvalidRunStateTransition):
        wf.delete_data(run_id, "too early")
    assert wf.record_store.lookup(run_id) == before


def _raw_rows(stack_name: str, wf: af.Workflow[Any, Any], request: pytest.FixtureRequest) -> Iterator[str]:
    """Every row of every table of the stack's database as text (bytes as text and as hex); none in memory."""
    store = wf.record_store
    if stack_name == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - the file's own table names
                    yield repr([v.decode(errors="replace") if isinstance(v, bytes) else v for v in row])
        finally:
            conn.close()
    elif stack_name in ("postgres", "kafka"):
        import psycopg  # only the server stacks need it

        with psycopg.connect(request.getfixturevalue("pg_dsn")) as conn:
            schema = store.db.schema
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
            for (table,) in tables:
                # A row as text shows a bytea as hex: its text is checked in both forms by the caller.
                query = f'SELECT t::text FROM "{schema}"."{table}" t'  # noqa: S608 - the schema's own names
                yield from (row[0] for row in conn.execute(query))


def test_a_deletion_leaves_the_original_object_nowhere_in_the_store(start, stack, request, poll_until, run_state_of):
    """After the deletion no version, record or outbox row keeps the object; the audit trail stays.

    Every earlier version keeps its status, run state, version and times; await_status
    hands out the replacement for a status the run passed before the deletion.
    """
    wf = start(_one_step())
    run_id = _completed(wf)
    before = wf.record_store.snapshots(run_id)
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")

    secret = CARD_NOTE.encode()
    leaks = [row for row in _raw_rows(stack.name, wf, request) if CARD_NOTE in row or secret.hex() in row]
    assert not leaks, f"the deleted object is still stored: {leaks}"
    store = wf.record_store
    deleted = store.lookup(run_id)
    after = store.snapshots(run_id)
    assert [(r.meta.version, r.status, r.run_state, r.created_at, r.updated_at) for r in after] == [
        *((r.meta.version, r.status, r.run_state, r.created_at, r.updated_at) for r in before),
        (3, Status.DONE, af.RunState.REQUESTED_DATA_DELETED, deleted.created_at, after[2].updated_at),
        (4, Status.DONE, af.RunState.DATA_DELETED, deleted.created_at, deleted.updated_at),
    ]
    assert {r.object for r in after} == {b'{"result":"deleted"}'}
    assert [r.object for r in store.list(wf.name)] == [b'{"result":"deleted"}']
    assert not [e for e in store.list_outbox_events(wf.name, 1000) if secret in repr(e).encode()]

    assert wf.await_status("o-1", run_id, Status.DONE, timeout=5).object == wf.codec.decode(deleted.object)
