"""The MySQL adapters pass every conformance suite, each test in a database of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

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

pytestmark = pytest.mark.mysql


def _factory(cls_name: str, dsn: str) -> Iterator[Callable[..., Any]]:
    """A factory of adapters on one database (several calls = several processes); closes them after."""
    from actorflow.adapters import mysql

    cls = getattr(mysql, cls_name)
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        adapter = cls(dsn, **kwargs)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


class TestMysqlRecordStore(RecordStoreSuite):
    @pytest.fixture
    def make_record_store(self, mysql_dsn: str) -> Iterator[Callable[..., Any]]:
        yield from _factory("MysqlRecordStore", mysql_dsn)


class TestMysqlTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    def make_timeout_store(self, mysql_dsn: str) -> Iterator[Callable[..., Any]]:
        yield from _factory("MysqlTimeoutStore", mysql_dsn)


class TestMysqlEventStreamer(EventStreamerSuite):
    @pytest.fixture
    def make_event_streamer(self, mysql_dsn: str) -> Iterator[Callable[..., Any]]:
        yield from _factory("MysqlEventStreamer", mysql_dsn)


class TestMysqlRoleScheduler(ExpiringLeaseSuite, MembershipSuite):
    """Each scheduler has a pool of its own: ``n`` of them are ``n`` nodes on one database."""

    @pytest.fixture
    def make_role_scheduler(self, mysql_dsn: str) -> Iterator[Callable[[int], list[Any]]]:
        factory = _factory("MysqlRoleScheduler", mysql_dsn)
        make = next(factory)
        yield lambda n: [make(ttl=0.5) for _ in range(n)]
        next(factory, None)


class TestMysqlFencedAcks(FencedAcksSuite):
    @pytest.fixture
    def make_fenced_streamer(self, mysql_dsn: str, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRoleScheduler

        return lambda: (opened(MysqlEventStreamer(mysql_dsn)), opened(MysqlRoleScheduler(mysql_dsn, ttl=0.3)))


class TestMysqlFencedTimeouts(FencedTimeoutsSuite):
    @pytest.fixture
    def make_fenced_timeouts(self, mysql_dsn: str, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.mysql import MysqlRoleScheduler, MysqlTimeoutStore

        return lambda: (opened(MysqlTimeoutStore(mysql_dsn)), opened(MysqlRoleScheduler(mysql_dsn, ttl=0.3)))


class TestMysqlFencedStore(FencedStoreSuite):
    @pytest.fixture
    def make_fenced_pair(self, mysql_dsn: str, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.mysql import MysqlRecordStore, MysqlRoleScheduler

        return lambda: (opened(MysqlRecordStore(mysql_dsn)), opened(MysqlRoleScheduler(mysql_dsn, ttl=0.3)))


class TestMysqlSharedDatabase(SharedDatabaseSuite):
    @pytest.fixture
    def make_shared_pair(self, mysql_dsn: str, opened: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore

        return lambda: (opened(MysqlRecordStore(mysql_dsn)), opened(MysqlEventStreamer(mysql_dsn)))
