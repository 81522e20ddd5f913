"""The PostgreSQL adapters pass every conformance suite, each test in a schema of its own."""

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

pytestmark = pytest.mark.postgres


def _factory(cls_name: str, dsn: str, schema: str) -> Iterator[Callable[..., Any]]:
    """A factory of adapters on one schema (several calls = several processes); closes them after."""
    from actorflow.adapters import postgres

    cls = getattr(postgres, cls_name)
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        adapter = cls(dsn, schema=schema, **kwargs)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


class TestPostgresRecordStore(RecordStoreSuite):
    @pytest.fixture
    def make_record_store(self, pg_dsn: str, pg_schema: str) -> Iterator[Callable[..., Any]]:
        yield from _factory("PostgresRecordStore", pg_dsn, pg_schema)


class TestPostgresTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    def make_timeout_store(self, pg_dsn: str, pg_schema: str) -> Iterator[Callable[..., Any]]:
        yield from _factory("PostgresTimeoutStore", pg_dsn, pg_schema)


class TestPostgresEventStreamer(EventStreamerSuite):
    @pytest.fixture
    def make_event_streamer(self, pg_dsn: str, pg_schema: str) -> Iterator[Callable[..., Any]]:
        yield from _factory("PostgresEventStreamer", pg_dsn, pg_schema)


class TestPostgresRoleScheduler(ExpiringLeaseSuite, MembershipSuite):
    """Each scheduler has a pool of its own: ``n`` of them are ``n`` nodes on one database."""

    @pytest.fixture
    def make_role_scheduler(self, pg_dsn: str, pg_schema: str) -> Iterator[Callable[[int], list[Any]]]:
        factory = _factory("PostgresRoleScheduler", pg_dsn, pg_schema)
        make = next(factory)
        yield lambda n: [make(ttl=0.5) for _ in range(n)]
        next(factory, None)


class TestPostgresFencedAcks(FencedAcksSuite):
    @pytest.fixture
    def make_fenced_streamer(
        self, pg_dsn: str, pg_schema: str, opened: Callable[[Any], Any]
    ) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRoleScheduler

        return lambda: (
            opened(PostgresEventStreamer(pg_dsn, schema=pg_schema)),
            opened(PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.3)),
        )


class TestPostgresFencedTimeouts(FencedTimeoutsSuite):
    @pytest.fixture
    def make_fenced_timeouts(
        self, pg_dsn: str, pg_schema: str, opened: Callable[[Any], Any]
    ) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.postgres import PostgresRoleScheduler, PostgresTimeoutStore

        return lambda: (
            opened(PostgresTimeoutStore(pg_dsn, schema=pg_schema)),
            opened(PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.3)),
        )


class TestPostgresFencedStore(FencedStoreSuite):
    @pytest.fixture
    def make_fenced_pair(
        self, pg_dsn: str, pg_schema: str, opened: Callable[[Any], Any]
    ) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.postgres import PostgresRecordStore, PostgresRoleScheduler

        return lambda: (
            opened(PostgresRecordStore(pg_dsn, schema=pg_schema)),
            opened(PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.3)),
        )


class TestPostgresSharedDatabase(SharedDatabaseSuite):
    @pytest.fixture
    def make_shared_pair(
        self, pg_dsn: str, pg_schema: str, opened: Callable[[Any], Any]
    ) -> Callable[[], tuple[Any, Any]]:
        from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore

        return lambda: (
            opened(PostgresRecordStore(pg_dsn, schema=pg_schema)),
            opened(PostgresEventStreamer(pg_dsn, schema=pg_schema)),
        )
