"""The `RecordStore` conformance suite: the original's cases plus actorflow's guarantees."""

# ruff: noqa: S101 - a pytest suite asserts (pytest rewrites these asserts, see __init__)

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from actorflow.errors import RecordNotFound
from actorflow.event import OutboxEvent, make_outbox_event
from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.testing.adaptertest._records import (
    FOREIGN_ID,
    STATUS_END,
    STATUS_MIDDLE,
    STATUS_STARTED,
    WORKFLOW,
    RecordStoreFactory,
    assert_same_record,
    dummy_record,
    next_version,
)
from actorflow.testing.adaptertest._recordstore_guarantees import GuaranteeCases
from actorflow.testing.adaptertest._recordstore_list import ListCases
from actorflow.testing.adaptertest._recordstore_pages import PageCases

__all__ = ["RecordStoreFactory", "RecordStoreSuite"]


def assert_outbox_event_of(event: OutboxEvent, record: Record) -> None:
    """``event`` is the outbox row ``make_outbox_event(record)`` describes (bar its id)."""
    want = make_outbox_event(record)
    assert isinstance(event, OutboxEvent)
    assert event.id.startswith("outbox-id-"), event.id
    assert event.workflow_name == record.workflow_name
    assert event.run_id == record.run_id
    assert event.type == record.status
    assert dict(event.headers) == dict(want.headers)
    assert event.created_at == want.created_at


class RecordStoreSuite(ListCases, PageCases, GuaranteeCases):
    """Conformance tests every `actorflow.protocols.RecordStore` must pass.

    Subclass it under a ``Test...`` name and give it a ``make_record_store`` fixture: a
    zero-argument callable returning a fresh, empty store. A test may call it more than
    once. The fixture may be a generator fixture (``yield`` the factory, then clean up)::

        import pytest
        from actorflow.adapters.memory import MemoryRecordStore
        from actorflow.testing.adaptertest import RecordStoreSuite

        class TestMemoryRecordStore(RecordStoreSuite):
            @pytest.fixture
            def make_record_store(self):
                return MemoryRecordStore

    The cases port luno/workflow's ``adaptertest.RunRecordStoreTest`` one for one, with
    its data. Because actorflow enforces "one unfinished run per foreign id" in the
    store, seeded runs that share a foreign id are stored finished, and runs that must
    stay unfinished get foreign ids of their own. Then come the guarantees the original
    lacks: optimistic concurrency, the in-progress rule, ordering, and the optional
    `BatchStore`, `Snapshots` and `OutboxWaiter` capabilities (tested only when the store
    has them).
    """

    @pytest.fixture
    def make_record_store(self) -> RecordStoreFactory:
        """Override this: return a zero-argument callable making a fresh record store."""
        pytest.fail(
            "RecordStoreSuite needs a make_record_store fixture: define "
            "`@pytest.fixture def make_record_store(self): return MyRecordStore` in your test class"
        )

    # -- the original's cases -----------------------------------------------------------

    def test_latest(self, make_record_store: RecordStoreFactory) -> None:
        """Latest returns the stored run, then its update (original case "Latest")."""
        store = make_record_store()
        expected = dummy_record(WORKFLOW)
        store.store(expected)
        assert_same_record(store.latest(expected.workflow_name, expected.foreign_id), expected)

        expected = next_version(expected, status=STATUS_END, run_state=RunState.COMPLETED)
        store.store(expected)
        assert_same_record(store.latest(expected.workflow_name, expected.foreign_id), expected)

    def test_lookup(self, make_record_store: RecordStoreFactory) -> None:
        """Lookup by run id returns the stored run (original case "Lookup")."""
        store = make_record_store()
        expected = dummy_record(WORKFLOW)
        store.store(expected)
        assert_same_record(store.lookup(expected.run_id), expected)

    def test_store_updates(self, make_record_store: RecordStoreFactory) -> None:
        """Each stored version replaces the last (original case "RecordStore")."""
        store = make_record_store()
        expected = dummy_record(WORKFLOW)
        store.store(expected)

        for status in (STATUS_MIDDLE, STATUS_END):
            latest = store.lookup(expected.run_id)
            expected = next_version(latest, status=status, run_state=RunState.RUNNING)
            store.store(expected)
            assert_same_record(store.lookup(expected.run_id), expected)

    def test_list_outbox_events(self, make_record_store: RecordStoreFactory) -> None:
        """One store writes one outbox event (original case "ListOutboxEvents")."""
        store = make_record_store()
        expected = dummy_record(WORKFLOW)
        store.store(expected)

        events = store.list_outbox_events(expected.workflow_name, 1000)
        assert len(events) == 1
        event = events[0]
        assert "outbox-id-" in event.id
        assert event.workflow_name == expected.workflow_name
        assert event.type == STATUS_STARTED
        assert event.headers["topic"] == "my_workflow-1"
        assert event.headers["foreign_id"] == FOREIGN_ID
        assert event.headers["workflow_name"] == "my_workflow"
        assert event.headers["run_id"] == expected.run_id
        assert event.headers["run_state"] == str(int(RunState.INITIATED))
        assert event.headers["record_version"] == "1"
        assert_outbox_event_of(event, expected)

    def test_delete_outbox_event(self, make_record_store: RecordStoreFactory) -> None:
        """A deleted outbox event is no longer listed (original case "DeleteOutboxEvent")."""
        store = make_record_store()
        expected = dummy_record(WORKFLOW)
        store.store(expected)

        events = store.list_outbox_events(expected.workflow_name, 1000)
        store.delete_outbox_event(events[0].id)
        assert store.list_outbox_events(expected.workflow_name, 1000) == []

    # -- round trips and misses ---------------------------------------------------------

    def test_every_field_round_trips(self, make_record_store: RecordStoreFactory) -> None:
        """Every field, meta included, comes back exactly as stored, with its type."""
        store = make_record_store()
        # Not UTC, with microseconds: a store may convert the zone but must keep the instant.
        created_at = datetime(2023, 4, 9, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        first = dummy_record(WORKFLOW, foreign_id="Andrew Wormald ✓", created_at=created_at)
        store.store(first)
        assert_same_record(store.lookup(first.run_id), first)

        paused = next_version(first, run_state=RunState.PAUSED, reason="paused: ünïcode ✓ 'quoted'")
        store.store(paused)
        assert_same_record(store.lookup(paused.run_id), paused)
        assert_same_record(store.latest(WORKFLOW, "Andrew Wormald ✓"), paused)

    def test_object_bytes_round_trip_exactly(self, make_record_store: RecordStoreFactory) -> None:
        """The object is opaque bytes: any codec's output (not only UTF-8 JSON) is kept."""
        store = make_record_store()
        binary = bytes(range(256)) + b"\x00\xff{not json"
        base = dummy_record(WORKFLOW)
        record = Record(
            workflow_name=base.workflow_name,
            foreign_id=base.foreign_id,
            run_id=base.run_id,
            run_state=base.run_state,
            status=base.status,
            object=binary,
            created_at=base.created_at,
            updated_at=base.updated_at,
            meta=base.meta,
        )
        store.store(record)
        assert_same_record(store.lookup(record.run_id), record)

        empty = next_version(record, obj=b"")
        store.store(empty)
        assert store.lookup(record.run_id).object == b""

    def test_lookup_of_unknown_run_raises_record_not_found(self, make_record_store: RecordStoreFactory) -> None:
        """lookup() raises RecordNotFound (never returns None) for an unknown run id."""
        store = make_record_store()
        store.store(dummy_record(WORKFLOW))
        with pytest.raises(RecordNotFound):
            store.lookup("no-such-run")

    def test_latest_of_unknown_foreign_id_raises_record_not_found(self, make_record_store: RecordStoreFactory) -> None:
        """latest() raises RecordNotFound for an unknown foreign id, or one of another workflow."""
        store = make_record_store()
        store.store(dummy_record(WORKFLOW))
        with pytest.raises(RecordNotFound):
            store.latest(WORKFLOW, "nobody")
        with pytest.raises(RecordNotFound):
            store.latest("another_workflow", FOREIGN_ID)
