"""Fixtures for the runtime tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from tests.model import Item, Stage, two_steps


@pytest.fixture
def make_workflow() -> Callable[..., af.Workflow[Item, Stage]]:
    """A two-step workflow on fresh memory adapters (or the ones given)."""

    def make(name: str = "wf", **adapters: Any) -> af.Workflow[Item, Stage]:
        return two_steps(name).build(
            adapters.get("streamer") or MemoryEventStreamer(),
            adapters.get("store") or MemoryRecordStore(outbox=True),
            adapters.get("scheduler") or MemoryRoleScheduler(),
        )

    return make


Node = Callable[[], tuple[Any, Any, Any]]  # a node's own (streamer, store, role scheduler)
TimedNode = Callable[[], tuple[Any, Any, Any, Any]]  # the same and a timeout store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_timed_node(request: pytest.FixtureRequest, tmp_path: Path, opened: Callable[[Any], Any]) -> TimedNode:
    """Adapters for one more node on the test's shared database, a timeout store included."""
    if request.param == "sqlite":
        from actorflow.adapters import sqlite

        path = tmp_path / "fleet.db"
        return lambda: (
            opened(sqlite.SqliteEventStreamer(path)),
            opened(sqlite.SqliteRecordStore(path)),
            opened(sqlite.SqliteRoleScheduler(path, ttl=1.0)),
            opened(sqlite.SqliteTimeoutStore(path)),
        )
    from actorflow.adapters import postgres

    dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    return lambda: (
        opened(postgres.PostgresEventStreamer(dsn, schema=schema)),
        opened(postgres.PostgresRecordStore(dsn, schema=schema)),
        opened(postgres.PostgresRoleScheduler(dsn, schema=schema, ttl=1.0)),
        opened(postgres.PostgresTimeoutStore(dsn, schema=schema)),
    )


@pytest.fixture
def new_node(new_timed_node: TimedNode) -> Node:
    """Adapters for one more node on the test's shared database."""
    return lambda: new_timed_node()[:3]
