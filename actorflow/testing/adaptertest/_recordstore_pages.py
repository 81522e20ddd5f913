"""`RecordPages` cases: cursor pages, run counts, and the prefix and status-name filters."""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from actorflow.capabilities import RecordPages, RunCount
from actorflow.errors import InvalidCursor
from actorflow.protocols import RecordFilter, RecordStore
from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.testing.adaptertest._records import (
    SECOND_WORKFLOW,
    STATUS_MIDDLE,
    STATUS_STARTED,
    WORKFLOW,
    RecordStoreFactory,
    dummy_record,
    next_version,
)

__all__ = ["PageCases"]


def _pages(store: RecordStore) -> RecordPages:
    if not isinstance(store, RecordPages):
        pytest.skip("the store cannot page by cursor (RecordPages is optional)")
    return store


def _ids(records: list[Record]) -> list[str]:
    return [r.run_id for r in records]


class PageCases:
    """Browsing: every run once across cursor pages, in order, filtered; counts per status."""

    def test_cursor_pages_cover_every_run_once_in_both_orders(self, make_record_store: RecordStoreFactory) -> None:
        """Pages of 7 over 30 runs (some created at the same instant) are the list, in order."""
        store = make_record_store()
        pages = _pages(store)
        start = datetime.now(UTC)
        seeded = [
            dummy_record(WORKFLOW, foreign_id=f"fid {i}", created_at=start + timedelta(milliseconds=i // 3))
            for i in range(30)
        ]
        for record in seeded:
            store.store(record)
        for order in ("asc", "desc"):
            seen: list[Record] = []
            after = None
            for _ in range(10):
                page = pages.page(WORKFLOW, limit=7, order=order, after=after)
                seen += page.records
                after = page.next
                if after is None:
                    break
            expected = store.list(WORKFLOW, limit=100, order=order)
            assert _ids(seen) == _ids(expected), order
            assert len(set(_ids(seen))) == 30

    def test_a_page_stays_put_while_runs_are_created(self, make_record_store: RecordStoreFactory) -> None:
        """Runs created after a cursor was handed out neither shift nor repeat the next page."""
        store = make_record_store()
        pages = _pages(store)
        start = datetime.now(UTC)
        for i in range(10):
            store.store(dummy_record(WORKFLOW, foreign_id=f"old {i}", created_at=start + timedelta(milliseconds=i)))
        first = pages.page(WORKFLOW, limit=4, order="desc")
        for i in range(5):
            store.store(
                dummy_record(WORKFLOW, foreign_id=f"new {i}", created_at=start + timedelta(seconds=1, milliseconds=i))
            )
        second = pages.page(WORKFLOW, limit=4, order="desc", after=first.next)
        assert [r.foreign_id for r in first.records] == ["old 9", "old 8", "old 7", "old 6"]
        assert [r.foreign_id for r in second.records] == ["old 5", "old 4", "old 3", "old 2"]

    def test_the_last_page_has_no_next_cursor(self, make_record_store: RecordStoreFactory) -> None:
        store = make_record_store()
        pages = _pages(store)
        for i in range(4):
            store.store(dummy_record(WORKFLOW, foreign_id=f"fid {i}"))
        assert pages.page(WORKFLOW, limit=4).next is None
        assert pages.page(WORKFLOW, limit=3).next is not None
        assert pages.page(SECOND_WORKFLOW, limit=3).records == []
        assert pages.page(SECOND_WORKFLOW, limit=3).next is None

    def test_pages_filter_like_list(self, make_record_store: RecordStoreFactory) -> None:
        """A filtered page holds only matching runs, across pages."""
        store = make_record_store()
        pages = _pages(store)
        for i in range(12):
            state = RunState.COMPLETED if i % 2 else RunState.INITIATED
            store.store(dummy_record(WORKFLOW, foreign_id=f"fid {i}", run_state=state))
            store.store(dummy_record(SECOND_WORKFLOW, foreign_id=f"fid {i}"))
        only = RecordFilter(run_states=(RunState.COMPLETED,))
        first = pages.page(WORKFLOW, limit=4, filter=only, order="asc")
        second = pages.page(WORKFLOW, limit=4, filter=only, order="asc", after=first.next)
        assert [r.foreign_id for r in first.records + second.records] == [f"fid {i}" for i in range(1, 12, 2)]
        assert second.next is None

    def test_a_cursor_the_store_did_not_hand_out_is_refused(self, make_record_store: RecordStoreFactory) -> None:
        store = make_record_store()
        pages = _pages(store)
        store.store(dummy_record(WORKFLOW))
        for bad in ("", "abc", "1.2.3", "' OR 1=1 --", "9" * 60):
            with pytest.raises(InvalidCursor):
                pages.page(WORKFLOW, after=bad)
        with pytest.raises(ValueError, match="order"):
            pages.page(WORKFLOW, order="sideways")  # type: ignore[arg-type]

    def test_foreign_id_prefix_matches_exactly(self, make_record_store: RecordStoreFactory) -> None:
        """The prefix is literal (``%`` and ``_`` are characters, case counts) on list and page."""
        store = make_record_store()
        pages = _pages(store)
        for fid in ("order-1", "order-2", "ORDER-3", "ord%er", "ord_x", "other"):
            store.store(dummy_record(WORKFLOW, foreign_id=fid))

        def matching(prefix: str) -> set[str]:
            found = {
                r.foreign_id for r in store.list(WORKFLOW, limit=100, filter=RecordFilter(foreign_id_prefix=prefix))
            }
            paged = {
                r.foreign_id
                for r in pages.page(WORKFLOW, limit=100, filter=RecordFilter(foreign_id_prefix=prefix)).records
            }
            assert found == paged
            return found

        assert matching("order-") == {"order-1", "order-2"}
        assert matching("ord%") == {"ord%er"}
        assert matching("ord_") == {"ord_x"}
        assert matching("o") == {"order-1", "order-2", "ord%er", "ord_x", "other"}
        assert matching("zzz") == set()

    def test_status_names_filter_by_the_stored_description(self, make_record_store: RecordStoreFactory) -> None:
        store = make_record_store()
        _pages(store)
        started = dummy_record(WORKFLOW, foreign_id="a", status=STATUS_STARTED)
        store.store(started)
        store.store(next_version(started, status=STATUS_MIDDLE))
        store.store(dummy_record(WORKFLOW, foreign_id="b", status=STATUS_STARTED))
        name = started.meta.status_description
        found = store.list(WORKFLOW, filter=RecordFilter(status_names=(name,)))
        assert [r.foreign_id for r in found] == ["b"]

    def test_runs_are_counted_per_status_and_run_state(self, make_record_store: RecordStoreFactory) -> None:
        store = make_record_store()
        pages = _pages(store)
        for i in range(3):
            store.store(dummy_record(WORKFLOW, foreign_id=f"a {i}", status=STATUS_STARTED))
        for i in range(2):
            record = dummy_record(WORKFLOW, foreign_id=f"b {i}", status=STATUS_STARTED)
            store.store(record)
            store.store(next_version(record, status=STATUS_MIDDLE, run_state=RunState.PAUSED))
        store.store(dummy_record(SECOND_WORKFLOW, foreign_id="c"))
        middle = next_version(
            dummy_record(WORKFLOW, status=STATUS_MIDDLE), status=STATUS_MIDDLE
        ).meta.status_description
        started = dummy_record(WORKFLOW).meta.status_description
        assert pages.count_runs(WORKFLOW) == [
            RunCount(WORKFLOW, STATUS_STARTED, started, RunState.INITIATED, 3),
            RunCount(WORKFLOW, STATUS_MIDDLE, middle, RunState.PAUSED, 2),
        ]
        assert {c.workflow_name for c in pages.count_runs("")} == {WORKFLOW, SECOND_WORKFLOW}
        paused = pages.count_runs(WORKFLOW, filter=RecordFilter(run_states=(RunState.PAUSED,)))
        assert [dataclasses.astuple(c)[1:] for c in paused] == [(STATUS_MIDDLE, middle, RunState.PAUSED, 2)]
