"""The `TimeoutStore` conformance suite: the original's cases plus actorflow's fixes."""

# ruff: noqa: S101 - a pytest suite asserts

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actorflow.errors import InvalidTimeout, TimeoutNotFound
from actorflow.protocols import TimeoutRecord, TimeoutStore

__all__ = ["TimeoutStoreFactory", "TimeoutStoreSuite"]

TimeoutStoreFactory = Callable[[], TimeoutStore]
"""Makes a fresh, empty timeout store (the suite's ``make_timeout_store`` fixture)."""

_WORKFLOW = "example"
_FOREIGN_ID = "andrew"
_STATUS_STARTED = 1
# Where a store stamps a time itself (``created_at`` when none is given), the original
# allows this much deviation from the test's clock.
_ALLOWED_DEVIATION = timedelta(seconds=10)


def _seed(store: TimeoutStore, count: int, expire_at: datetime) -> list[int]:
    """The original's seed: ``count`` timeouts of run ids ``1..count`` at status 1."""
    return [store.create(_WORKFLOW, _FOREIGN_ID, str(i + 1), _STATUS_STARTED, expire_at) for i in range(count)]


def _expect(timeouts: list[TimeoutRecord], run_ids: list[str], expire_at: datetime) -> None:
    """The original's ``expect``, with exact expiry: the store keeps the time it is given."""
    assert [t.run_id for t in timeouts] == run_ids
    now = datetime.now(UTC)
    for timeout in timeouts:
        assert isinstance(timeout, TimeoutRecord)
        assert timeout.workflow_name == _WORKFLOW
        assert timeout.foreign_id == _FOREIGN_ID
        assert timeout.status == _STATUS_STARTED
        assert not timeout.completed
        assert timeout.expire_at == expire_at
        assert timeout.expire_at.tzinfo is not None, "expire_at must be timezone-aware"
        assert timeout.created_at.tzinfo is not None, "created_at must be timezone-aware"
        assert abs(timeout.created_at - now) <= _ALLOWED_DEVIATION


class TimeoutStoreSuite:
    """Conformance tests every `actorflow.protocols.TimeoutStore` must pass.

    Subclass it under a ``Test...`` name and give it a ``make_timeout_store`` fixture: a
    zero-argument callable returning a fresh, empty store (it may be a generator fixture
    that cleans up after the test)::

        import pytest
        from actorflow.adapters.memory import MemoryTimeoutStore
        from actorflow.testing.adaptertest import TimeoutStoreSuite

        class TestMemoryTimeoutStore(TimeoutStoreSuite):
            @pytest.fixture
            def make_timeout_store(self):
                return MemoryTimeoutStore

    The first two cases port ``adaptertest.RunTimeoutStoreTest`` with its seed (three
    timeouts of workflow ``example``, foreign id ``andrew``, run ids ``1``-``3``, expired
    an hour ago); the others pin down what the original left loose.
    """

    @pytest.fixture
    def make_timeout_store(self) -> TimeoutStoreFactory:
        """Override this: return a zero-argument callable making a fresh timeout store."""
        pytest.fail(
            "TimeoutStoreSuite needs a make_timeout_store fixture: define "
            "`@pytest.fixture def make_timeout_store(self): return MyTimeoutStore` in your test class"
        )

    def test_complete_and_cancel_timeouts(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """Completed and cancelled timeouts are no longer valid (original case)."""
        store = make_timeout_store()
        expire_at = datetime.now(UTC) - timedelta(hours=1)
        ids = _seed(store, 3, expire_at)

        store.complete(ids[1])
        store.cancel(ids[2])

        _expect(store.list_valid(_WORKFLOW, _STATUS_STARTED, datetime.now(UTC)), ["1"], expire_at)

    def test_list_timeouts(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """list() returns every uncompleted timeout of the workflow, by id (original case)."""
        store = make_timeout_store()
        expire_at = datetime.now(UTC) - timedelta(hours=1)
        ids = _seed(store, 3, expire_at)

        timeouts = store.list(_WORKFLOW)
        _expect(timeouts, ["1", "2", "3"], expire_at)
        assert [t.id for t in timeouts] == ids

    # -- beyond the original ------------------------------------------------------------

    def test_ids_start_at_1_and_increase(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """A fresh store's first id is 1; every later id is larger."""
        store = make_timeout_store()
        ids = _seed(store, 5, datetime.now(UTC))
        assert ids[0] == 1
        assert ids == sorted(set(ids))

    def test_given_times_are_kept_exactly(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """expire_at and a given created_at come back exactly (the workflow's clock rules)."""
        store = make_timeout_store()
        expire_at = datetime(2023, 4, 9, 9, 30, 0, 123456, tzinfo=UTC)
        created_at = datetime(2023, 4, 9, 8, 30, 0, 654321, tzinfo=UTC)
        timeout_id = store.create(_WORKFLOW, _FOREIGN_ID, "run-1", 7, expire_at, created_at=created_at)

        (got,) = store.list(_WORKFLOW)
        assert got == TimeoutRecord(
            id=timeout_id,
            workflow_name=_WORKFLOW,
            foreign_id=_FOREIGN_ID,
            run_id="run-1",
            status=7,
            completed=False,
            expire_at=expire_at,
            created_at=created_at,
        )

    def test_cancel_of_an_unknown_id_raises_timeout_not_found(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """Cancelling an unknown id raises TimeoutNotFound and removes no other timeout."""
        store = make_timeout_store()
        ids = _seed(store, 3, datetime.now(UTC) - timedelta(hours=1))
        with pytest.raises(TimeoutNotFound):
            store.cancel(max(ids) + 1000)
        store.cancel(ids[0])
        with pytest.raises(TimeoutNotFound):
            store.cancel(ids[0])  # already cancelled
        assert [t.id for t in store.list(_WORKFLOW)] == ids[1:]

    def test_list_valid_includes_expiry_at_now(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """list_valid() includes a timeout expiring exactly at ``now`` and none in the future."""
        store = make_timeout_store()
        now = datetime(2023, 4, 9, 8, 30, tzinfo=UTC)
        past = store.create(_WORKFLOW, _FOREIGN_ID, "past", 1, now - timedelta(microseconds=1))
        at_now = store.create(_WORKFLOW, _FOREIGN_ID, "now", 1, now)
        store.create(_WORKFLOW, _FOREIGN_ID, "future", 1, now + timedelta(microseconds=1))

        assert [t.id for t in store.list_valid(_WORKFLOW, 1, now)] == [past, at_now]

    def test_list_valid_filters_by_workflow_and_status(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """list_valid() returns only the workflow's uncompleted timeouts of that status, by id."""
        store = make_timeout_store()
        expired = datetime.now(UTC) - timedelta(minutes=5)
        wanted = [store.create(_WORKFLOW, _FOREIGN_ID, "a", 2, expired)]
        store.create(_WORKFLOW, _FOREIGN_ID, "b", 3, expired)
        store.create("other", _FOREIGN_ID, "c", 2, expired)
        done = store.create(_WORKFLOW, _FOREIGN_ID, "d", 2, expired)
        wanted.append(store.create(_WORKFLOW, _FOREIGN_ID, "e", 2, expired))
        store.complete(done)

        assert [t.id for t in store.list_valid(_WORKFLOW, 2, datetime.now(UTC))] == wanted
        assert [t.run_id for t in store.list(_WORKFLOW)] == ["a", "b", "e"]
        assert [t.run_id for t in store.list("other")] == ["c"]
        assert store.list("nobody") == []

    def test_the_timer_index_and_record_version_are_kept(self, make_timeout_store: TimeoutStoreFactory) -> None:
        """``index`` and ``record_version`` given to create() come back from list() and list_valid()."""
        store = make_timeout_store()
        expired = datetime.now(UTC) - timedelta(minutes=5)
        first = store.create(_WORKFLOW, _FOREIGN_ID, "run-1", 2, expired, index=0, record_version=3)
        second = store.create(_WORKFLOW, _FOREIGN_ID, "run-1", 2, expired, index=1, record_version=3)
        later = store.create(_WORKFLOW, _FOREIGN_ID, "run-1", 2, expired, index=0, record_version=2**40)

        expected = [(first, 0, 3), (second, 1, 3), (later, 0, 2**40)]
        assert [(t.id, t.index, t.record_version) for t in store.list(_WORKFLOW)] == expected
        valid = store.list_valid(_WORKFLOW, 2, datetime.now(UTC))
        assert [(t.id, t.index, t.record_version) for t in valid] == expected

    def test_a_timeout_created_without_index_or_version_lists_none(
        self, make_timeout_store: TimeoutStoreFactory
    ) -> None:
        """create() without them (an older caller) still works: both come back ``None``."""
        store = make_timeout_store()
        expired = datetime.now(UTC) - timedelta(minutes=5)
        old_style = store.create(_WORKFLOW, _FOREIGN_ID, "run-1", 2, expired)
        only_index = store.create(_WORKFLOW, _FOREIGN_ID, "run-2", 2, expired, index=4)

        listed = [(t.id, t.index, t.record_version) for t in store.list(_WORKFLOW)]
        assert listed == [(old_style, None, None), (only_index, 4, None)]

    @pytest.mark.parametrize(
        ("index", "record_version"),
        [(-1, 1), (0, 0), (True, 1), (0, "3"), (1.0, 1)],
        ids=["negative-index", "version-0", "bool-index", "text-version", "float-index"],
    )
    def test_a_bad_index_or_record_version_is_refused(
        self, make_timeout_store: TimeoutStoreFactory, index: Any, record_version: Any
    ) -> None:
        """An index below 0, a version below 1 or a non-int raises InvalidTimeout and stores nothing."""
        store = make_timeout_store()
        with pytest.raises(InvalidTimeout):
            store.create(
                _WORKFLOW, _FOREIGN_ID, "run-1", 2, datetime.now(UTC), index=index, record_version=record_version
            )
        assert store.list(_WORKFLOW) == []
