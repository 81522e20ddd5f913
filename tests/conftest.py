"""Shared fixtures: the adapter stacks the feature suite runs on, and hygiene checks."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)

pytest_plugins = ["tests.pg_fixtures", "tests.kafka_fixtures"]

# The MySQL fixtures, for tests outside tests/adapters/mysql too (imported: registering that
# conftest as a plugin as well would load it twice).
from tests.adapters.mysql.conftest import make_mysql_database, mysql_dsn, mysql_server  # noqa: E402, F401


@dataclasses.dataclass
class Adapters:
    """One set of adapters a workflow is built on."""

    event_streamer: Any
    record_store: Any
    role_scheduler: Any
    timeout_store: Any

    def close(self) -> None:
        """Close every adapter that can be closed (connections, listener threads)."""
        for adapter in (self.event_streamer, self.record_store, self.role_scheduler, self.timeout_store):
            close = getattr(adapter, "close", None)
            if close is not None:
                close()


@dataclasses.dataclass
class Stack:
    """A named way to make adapters; the adapters it made are closed after the test."""

    name: str
    factory: Callable[[af.Clock | None], Adapters]
    made: list[Adapters] = dataclasses.field(default_factory=list)

    def make(self, clock: af.Clock | None = None) -> Adapters:
        """Fresh adapters of this stack (sharing one database when the stack has one).

        Without ``clock`` the event streamer gets none: it stamps events with the clock
        of the first workflow built on it (so the suite proves the workflow lends it).
        """
        adapters = self.factory(clock)
        self.made.append(adapters)
        return adapters

    def build(
        self, builder: af.Builder[Any, Any], *, clock: af.Clock | None = None, **kwargs: Any
    ) -> af.Workflow[Any, Any]:
        """Build ``builder`` on fresh adapters of this stack."""
        clock = clock or af.SystemClock()
        adapters = self.make()
        kwargs.setdefault("timeout_store", adapters.timeout_store)
        return builder.build(
            adapters.event_streamer,
            adapters.record_store,
            adapters.role_scheduler,
            clock=clock,
            **kwargs,
        )


# Each stack: a function of (clock, request) making adapters. Within one test every call
# shares one database (like several processes on one server); server stacks skip, or
# fail when ACTORFLOW_REQUIRE_SERVICES=1, when their server is missing.
StackFactory = Callable[[af.Clock | None, pytest.FixtureRequest], Adapters]


def _memory(clock: af.Clock | None, _request: pytest.FixtureRequest) -> Adapters:
    return Adapters(MemoryEventStreamer(clock=clock), MemoryRecordStore(), MemoryRoleScheduler(), MemoryTimeoutStore())


def _sqlite(clock: af.Clock | None, request: pytest.FixtureRequest) -> Adapters:
    """SQLite adapters on the test's own file; every call in one test shares it (one node's roles in memory)."""
    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore

    path = request.getfixturevalue("tmp_path") / "actorflow.db"
    return Adapters(
        SqliteEventStreamer(path, clock=clock),
        SqliteRecordStore(path),
        MemoryRoleScheduler(),
        SqliteTimeoutStore(path),
    )


def _postgres(clock: af.Clock | None, request: pytest.FixtureRequest) -> Adapters:
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore, PostgresTimeoutStore

    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("pg_schema")
    return Adapters(
        PostgresEventStreamer(dsn, schema=schema, clock=clock),
        PostgresRecordStore(dsn, schema=schema),
        MemoryRoleScheduler(),
        PostgresTimeoutStore(dsn, schema=schema),
    )


def _mysql(clock: af.Clock | None, request: pytest.FixtureRequest) -> Adapters:
    """MySQL/MariaDB adapters on the test's own database; every call in one test shares it (roles in memory)."""
    from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore, MysqlTimeoutStore

    dsn = request.getfixturevalue("mysql_dsn")
    return Adapters(
        MysqlEventStreamer(dsn, clock=clock),
        MysqlRecordStore(dsn),
        MemoryRoleScheduler(),
        MysqlTimeoutStore(dsn),
    )


def _kafka(clock: af.Clock | None, request: pytest.FixtureRequest) -> Adapters:
    """Kafka (the session's Tansu broker, a topic prefix per test) for events; PostgreSQL for records and timeouts.

    One partition per topic: some feature tests rely on one delivery order across runs
    (a run triggered later is "behind" an earlier one), which Kafka keeps only within a
    partition. Partition-assigned shards are tested end to end in tests/adapters/kafka.
    """
    from actorflow.adapters.kafka import KafkaEventStreamer
    from actorflow.adapters.postgres import PostgresRecordStore, PostgresTimeoutStore

    servers = request.getfixturevalue("kafka_broker")
    prefix = request.getfixturevalue("kafka_prefix")
    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("pg_schema")
    return Adapters(
        KafkaEventStreamer(servers, prefix, partitions=1, clock=clock),
        PostgresRecordStore(dsn, schema=schema),
        MemoryRoleScheduler(),
        PostgresTimeoutStore(dsn, schema=schema),
    )


STACKS: dict[str, StackFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "mysql": _mysql,
    "kafka": _kafka,
}


# The stacks on a server carry its marker: `pytest -m "not postgres and not mysql and not kafka"`
# runs the suite on memory and SQLite only (records of the kafka stack are in PostgreSQL).
_STACK_MARKS = {
    "postgres": [pytest.mark.postgres],
    "mysql": [pytest.mark.mysql],
    "kafka": [pytest.mark.kafka, pytest.mark.postgres],
}


# The server fixtures each stack's factory reads: set up before the test's workflows, so they
# are torn down after those stopped (a schema dropped under a running node costs a restart
# loop and a reconnect per process, for nothing).
_STACK_FIXTURES = {
    "postgres": ("pg_dsn", "pg_schema"),
    "mysql": ("mysql_dsn",),
    "kafka": ("kafka_broker", "kafka_prefix", "pg_dsn", "pg_schema"),
}


@pytest.fixture(params=[pytest.param(name, marks=_STACK_MARKS.get(name, ())) for name in sorted(STACKS)])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Each adapter stack in turn; what it made is closed afterwards."""
    for name in _STACK_FIXTURES.get(request.param, ()):
        request.getfixturevalue(name)
    factory = STACKS[request.param]
    made = Stack(request.param, lambda clock: factory(clock, request))
    yield made
    for adapters in made.made:
        adapters.close()


@pytest.fixture(autouse=True)
def _scrub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ACTORFLOW_") and name != "ACTORFLOW_REQUIRE_SERVICES":
            monkeypatch.delenv(name)


@pytest.fixture
def opened() -> Iterator[Callable[[Any], Any]]:
    """``opened(x)``: ``x`` (an adapter, a sender, a receiver) is closed after the test, last first.

    An adapter on a SQLite file must then have no connection left open.
    """
    resources: list[Any] = []
    yield lambda resource: resources.append(resource) or resource
    for resource in reversed(resources):
        resource.close()
        open_connections = getattr(getattr(resource, "db", None), "open_connections", None)
        if callable(open_connections):
            assert open_connections() == 0, f"{resource!r} left connections open"


# The fixtures that reach a server, by the marker a test using them must carry.
_SERVER_FIXTURES = {
    "postgres": frozenset({"pg_dsn", "pg_schema", "make_pg_schema"}),
    "mysql": frozenset({"mysql_server", "make_mysql_database", "mysql_dsn"}),
    "kafka": frozenset({"kafka_broker", "kafka_prefix", "moto_s3"}),
}


@pytest.fixture(autouse=True)
def _server_tests_are_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used a server's fixture (directly or through ``getfixturevalue``) carries its marker.

    So ``-m "not postgres and not kafka"`` is exactly the tests that need no server.
    """
    yield
    used = set(request.fixturenames)
    missing = [
        m for m, names in _SERVER_FIXTURES.items() if used & names and request.node.get_closest_marker(m) is None
    ]
    if missing:
        pytest.fail(f"{request.node.nodeid} uses a server: mark it {', '.join(f'@pytest.mark.{m}' for m in missing)}")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Every thread a test starts must be gone when it ends (stop() joins everything)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
