"""`RecordStore.list` cases: the original's paging and filter counts, then order and filters."""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts, with the original's counts

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actorflow.protocols import RecordFilter, RecordStore
from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.testing.adaptertest._records import (
    FOREIGN_ID,
    SECOND_WORKFLOW,
    STATUS_END,
    STATUS_MIDDLE,
    STATUS_STARTED,
    WORKFLOW,
    RecordStoreFactory,
    dummy_record,
    next_version,
)

__all__ = ["ListCases"]


def _ids(records: list[Record]) -> list[str]:
    return [r.run_id for r in records]


def _seed(store: RecordStore, records: list[Record]) -> list[Record]:
    for record in records:
        store.store(record)
    return records


def _spaced(start: datetime, index: int) -> datetime:
    """Distinct, increasing creation times, so creation order is unambiguous for every store."""
    return start + timedelta(milliseconds=index)


class ListCases:
    """Listing: the original's ``testList`` cases, then ordering and filter combinations."""

    def test_list_with_no_workflow_returns_all(self, make_record_store: RecordStoreFactory) -> None:
        """1000 runs over two workflows page through completely (original case)."""
        store = make_record_store()
        seed_count = 1000
        start = datetime.now(UTC)
        seeded = _seed(
            store,
            [
                dummy_record(
                    SECOND_WORKFLOW if i > seed_count // 2 else WORKFLOW,
                    foreign_id=f"{FOREIGN_ID} {i}",
                    created_at=_spaced(start, i),
                )
                for i in range(seed_count)
            ],
        )

        ls = store.list("", offset=0, limit=53, order="asc")
        assert len(ls) == 53
        ls2 = store.list("", offset=53, limit=100, order="asc")
        assert len(ls2) == 100
        assert ls[52].run_id != ls2[0].run_id
        ls3 = store.list("", offset=153, limit=seed_count - 153, order="asc")
        assert len(ls3) == seed_count - 153
        assert ls3[152].run_id != ls3[0].run_id

        last_page_asc = store.list("", offset=950, limit=1000, order="asc")
        assert len(last_page_asc) == 50
        last_page_desc = store.list("", offset=950, limit=1000, order="desc")
        assert len(last_page_desc) == 50

        # Beyond the original: the pages are the whole list, in creation order, once each.
        assert _ids(ls + ls2 + ls3) == _ids(seeded)
        assert _ids(last_page_asc) == _ids(seeded[950:])
        assert _ids(last_page_desc) == _ids(seeded[:50])[::-1]

    def test_list_by_workflow_name(self, make_record_store: RecordStoreFactory) -> None:
        """Listing one workflow returns only its 100 runs (original case "List - WorkflowName")."""
        store = make_record_store()
        for i in range(100):
            store.store(dummy_record(WORKFLOW, foreign_id=f"{FOREIGN_ID} {i}"))
            store.store(dummy_record(SECOND_WORKFLOW, foreign_id=f"{FOREIGN_ID} {i}"))

        ls = store.list(WORKFLOW, offset=0, limit=2000, order="asc")
        assert len(ls) == 100
        assert all(r.workflow_name == WORKFLOW for r in ls)

    def test_list_filter_by_foreign_id(self, make_record_store: RecordStoreFactory) -> None:
        """20 runs per foreign id; each filter gives its 20 (original case "FilterByForeignID").

        Only the last run of each foreign id is unfinished: a store admits one at a time.
        """
        store = make_record_store()
        foreign_ids = ["MSDVUI-OBEWF-BYUIOW", "FRELBJK-SRGIUE-RGTJDSF"]
        for foreign_id in foreign_ids:
            for j in range(20):
                state = RunState.COMPLETED if j < 19 else RunState.INITIATED
                store.store(dummy_record(WORKFLOW, foreign_id=foreign_id, run_state=state))

        ls = store.list(WORKFLOW, limit=2000, filter=RecordFilter(foreign_ids=(foreign_ids[0],)))
        assert len(ls) == 20
        assert all(r.foreign_id == foreign_ids[0] for r in ls)
        ls2 = store.list(WORKFLOW, limit=100, filter=RecordFilter(foreign_ids=(foreign_ids[1],)))
        assert len(ls2) == 20
        assert all(r.foreign_id == foreign_ids[1] for r in ls2)
        assert store.list(WORKFLOW, limit=100, filter=RecordFilter(foreign_ids=("random",))) == []

    def test_list_filter_by_run_state(self, make_record_store: RecordStoreFactory) -> None:
        """Each run-state filter returns its count; Running+Paused returns 103 (original case)."""
        store = make_record_store()
        config = {
            RunState.INITIATED: 10,
            RunState.RUNNING: 100,
            RunState.COMPLETED: 20,
            RunState.PAUSED: 3,
            RunState.CANCELLED: 1,
            RunState.DATA_DELETED: 15,
        }
        for state, count in config.items():
            for i in range(count):
                store.store(dummy_record(WORKFLOW, foreign_id=f"{FOREIGN_ID} {state.name} {i}", run_state=state))

        for state, count in config.items():
            ls = store.list(WORKFLOW, limit=2000, filter=RecordFilter(run_states=(state,)))
            assert len(ls) == count, f"expected {count} entries of {state}"
            assert all(r.run_state == state for r in ls)

        both = store.list(WORKFLOW, limit=2000, filter=RecordFilter(run_states=(RunState.RUNNING, RunState.PAUSED)))
        assert len(both) == 103
        assert all(r.run_state in (RunState.RUNNING, RunState.PAUSED) for r in both)

    def test_list_filter_by_status(self, make_record_store: RecordStoreFactory) -> None:
        """Each status filter returns its count (original case "List - FilterByStatus")."""
        store = make_record_store()
        config = {STATUS_STARTED: 10, STATUS_MIDDLE: 100, STATUS_END: 20}
        for status, count in config.items():
            for i in range(count):
                store.store(dummy_record(WORKFLOW, foreign_id=f"{FOREIGN_ID} {status} {i}", status=status))

        for status, count in config.items():
            ls = store.list(WORKFLOW, limit=100, filter=RecordFilter(statuses=(status,)))
            assert len(ls) == count
            assert all(r.status == status for r in ls)

    def test_list_filter_by_created_at(self, make_record_store: RecordStoreFactory) -> None:
        """Created-after/before bound the list (original case "List - Filter by Created At")."""
        store = make_record_store()
        now = datetime.now(UTC)
        n = 100
        for i in range(n):
            store.store(dummy_record(WORKFLOW, foreign_id=f"{FOREIGN_ID} {i}", created_at=now))

        t0 = now - timedelta(minutes=1)
        t1 = now + timedelta(minutes=1)
        assert len(store.list(WORKFLOW, limit=n, filter=RecordFilter(created_after=t0, created_before=t1))) == n
        assert store.list(WORKFLOW, limit=n, filter=RecordFilter(created_after=t1)) == []
        assert store.list(WORKFLOW, limit=n, filter=RecordFilter(created_before=t0)) == []

    # -- beyond the original ------------------------------------------------------------

    def test_list_orders_by_creation(self, make_record_store: RecordStoreFactory) -> None:
        """``asc`` is oldest first, ``desc`` newest first; an update keeps a run's place."""
        store = make_record_store()
        start = datetime.now(UTC)
        seeded = _seed(store, [dummy_record(foreign_id=f"r{i}", created_at=_spaced(start, i)) for i in range(10)])
        store.store(next_version(seeded[0], status=STATUS_MIDDLE, run_state=RunState.RUNNING))

        assert _ids(store.list(WORKFLOW)) == _ids(seeded)
        assert _ids(store.list(WORKFLOW, order="desc")) == _ids(seeded)[::-1]
        assert _ids(store.list(WORKFLOW, order="desc", offset=2, limit=3)) == _ids(seeded)[::-1][2:5]
        assert _ids(store.list(WORKFLOW, order="asc", offset=8, limit=5)) == _ids(seeded)[8:]
        assert store.list(WORKFLOW, offset=10) == []
        assert store.list(WORKFLOW)[0].status == STATUS_MIDDLE, "list returns the current version"

    def test_list_default_limit_is_25(self, make_record_store: RecordStoreFactory) -> None:
        """Without a limit a page holds 25 runs, as in the original."""
        store = make_record_store()
        start = datetime.now(UTC)
        seeded = _seed(store, [dummy_record(foreign_id=f"r{i}", created_at=_spaced(start, i)) for i in range(30)])
        assert _ids(store.list(WORKFLOW)) == _ids(seeded[:25])
        assert _ids(store.list(WORKFLOW, offset=25)) == _ids(seeded[25:])

    def test_list_filter_combinations(self, make_record_store: RecordStoreFactory) -> None:
        """Every condition of a RecordFilter must hold; the filter applies before paging."""
        store = make_record_store()
        start = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        seeded: list[Record] = []
        k = 0
        for foreign_id in ("a", "b", "c"):
            for status in (STATUS_STARTED, STATUS_MIDDLE, STATUS_END):
                for state in (RunState.COMPLETED, RunState.CANCELLED):
                    seeded.append(
                        dummy_record(
                            foreign_id=foreign_id, status=status, run_state=state, created_at=_spaced(start, k)
                        )
                    )
                    k += 1
            seeded.append(
                dummy_record(
                    foreign_id=foreign_id,
                    status=STATUS_MIDDLE,
                    run_state=RunState.RUNNING,
                    created_at=_spaced(start, k),
                )
            )
            k += 1
        other = dummy_record(SECOND_WORKFLOW, foreign_id="a", status=STATUS_MIDDLE, created_at=_spaced(start, k))
        _seed(store, [*seeded, other])

        def expect(flt: RecordFilter, workflow_name: str = WORKFLOW) -> list[str]:
            pool = [*seeded, other]
            return [
                r.run_id for r in pool if (not workflow_name or r.workflow_name == workflow_name) and flt.matches(r)
            ]

        def check(flt: RecordFilter, count: int, workflow_name: str = WORKFLOW) -> None:
            want = expect(flt, workflow_name)
            assert len(want) == count, "the suite's own arithmetic"
            assert _ids(store.list(workflow_name, limit=100, filter=flt)) == want, flt
            assert _ids(store.list(workflow_name, limit=100, order="desc", filter=flt)) == want[::-1], flt

        check(RecordFilter(), 21)
        check(RecordFilter(foreign_ids=("a", "b"), statuses=(STATUS_MIDDLE,)), 6)
        check(RecordFilter(foreign_ids=("c",), run_states=(RunState.CANCELLED, RunState.RUNNING)), 4)
        check(RecordFilter(statuses=(STATUS_STARTED, STATUS_END), run_states=(RunState.COMPLETED,)), 6)
        check(RecordFilter(foreign_ids=("a",), statuses=(STATUS_MIDDLE,)), 4, workflow_name="")
        check(RecordFilter(foreign_ids=("a",), statuses=(STATUS_MIDDLE,), run_states=(RunState.INITIATED,)), 1, "")
        # Created-at bounds are strict: a run created exactly at a bound is outside it.
        check(RecordFilter(created_after=_spaced(start, 4), created_before=_spaced(start, 10)), 5)
        check(RecordFilter(created_after=_spaced(start, 4), statuses=(STATUS_END,), foreign_ids=("b",)), 2)
        check(RecordFilter(created_before=_spaced(start, 0)), 0)

        flt = RecordFilter(run_states=(RunState.COMPLETED,))
        want = expect(flt)
        assert _ids(store.list(WORKFLOW, offset=2, limit=4, filter=flt)) == want[2:6]
        assert _ids(store.list(WORKFLOW, offset=2, limit=4, order="desc", filter=flt)) == want[::-1][2:6]
