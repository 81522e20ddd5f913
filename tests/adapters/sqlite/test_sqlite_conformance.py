"""The SQLite adapters pass every conformance suite, unchanged, each store on a fresh file."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteRoleScheduler, SqliteTimeoutStore
from actorflow.clock import Clock
from actorflow.testing.adaptertest import (
    EventStreamerSuite,
    ExpiringLeaseSuite,
    FencedAcksSuite,
    FencedStoreSuite,
    FencedTimeoutsSuite,
    MembershipSuite,
    RecordStoreSuite,
    SharedDatabaseSuite,
    TimeoutStoreSuite,
)


def _fresh(tmp_path: Path, make: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """A factory of adapters, each on a new file in ``tmp_path``; every one is closed after the test."""
    made: list[Any] = []
    numbers = itertools.count(1)

    def factory(**kwargs: Any) -> Any:
        adapter = make(tmp_path / f"conformance-{next(numbers)}.db", **kwargs)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
        assert adapter.db.open_connections() == 0


class TestSqliteRecordStore(RecordStoreSuite):
    @pytest.fixture
    def make_record_store(self, tmp_path: Path) -> Iterator[Callable[[], SqliteRecordStore]]:
        yield from _fresh(tmp_path, SqliteRecordStore)


class TestSqliteTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    def make_timeout_store(self, tmp_path: Path) -> Iterator[Callable[[], SqliteTimeoutStore]]:
        yield from _fresh(tmp_path, SqliteTimeoutStore)


class TestSqliteEventStreamer(EventStreamerSuite):
    @pytest.fixture
    def make_event_streamer(self, tmp_path: Path) -> Iterator[Callable[..., SqliteEventStreamer]]:
        fresh = _fresh(tmp_path, SqliteEventStreamer)
        factory = next(fresh)

        def make(clock: Clock | None = None) -> SqliteEventStreamer:
            result: SqliteEventStreamer = factory(clock=clock)
            return result

        yield make
        next(fresh, None)


class TestSqliteRoleScheduler(ExpiringLeaseSuite, MembershipSuite):
    """``n`` schedulers on one file are ``n`` node processes on one host (each with its own connections)."""

    @pytest.fixture
    def make_role_scheduler(self, tmp_path: Path) -> Iterator[Callable[[int], list[SqliteRoleScheduler]]]:
        made: list[SqliteRoleScheduler] = []

        def make(n: int) -> list[SqliteRoleScheduler]:
            made.extend(SqliteRoleScheduler(tmp_path / "roles.db", ttl=0.5) for _ in range(n))
            return made[-n:]

        yield make
        for scheduler in made:
            scheduler.close()
            assert scheduler.db.open_connections() == 0


class TestSqliteFencedAcks(FencedAcksSuite):
    @pytest.fixture
    def make_fenced_streamer(self, tmp_path: Path, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        path = tmp_path / "fenced-acks.db"
        return lambda: (opened(SqliteEventStreamer(path)), opened(SqliteRoleScheduler(path, ttl=0.3)))


class TestSqliteFencedTimeouts(FencedTimeoutsSuite):
    @pytest.fixture
    def make_fenced_timeouts(self, tmp_path: Path, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        path = tmp_path / "fenced-timeouts.db"
        return lambda: (opened(SqliteTimeoutStore(path)), opened(SqliteRoleScheduler(path, ttl=0.3)))


class TestSqliteFencedStore(FencedStoreSuite):
    @pytest.fixture
    def make_fenced_pair(self, tmp_path: Path, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        path = tmp_path / "fenced.db"
        return lambda: (opened(SqliteRecordStore(path)), opened(SqliteRoleScheduler(path, ttl=0.3)))


class TestSqliteSharedDatabase(SharedDatabaseSuite):
    @pytest.fixture
    def make_shared_pair(self, tmp_path: Path, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        path = tmp_path / "shared.db"
        return lambda: (opened(SqliteRecordStore(path)), opened(SqliteEventStreamer(path)))
