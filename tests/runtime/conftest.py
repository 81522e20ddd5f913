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
            adapters.get("store") or MemoryRecordStore(),
            adapters.get("scheduler") or MemoryRoleScheduler(),
        )

    return make


Node = Callable[[], tuple[Any, Any, Any]]  # a node's own (streamer, store, role scheduler)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_node(request: pytest.FixtureRequest, tmp_path: Path, opened: Callable[[Any], Any]) -> Node:
    """Adapters for one more node on the test's shared database."""
    if request.param == "sqlite":
        from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteRoleScheduler

        path = tmp_path / "fleet.db"
        return lambda: (
            opened(SqliteEventStreamer(path)),
            opened(SqliteRecordStore(path)),
            opened(SqliteRoleScheduler(path, ttl=1.0)),
        )
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore, PostgresRoleScheduler

    dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    return lambda: (
        opened(PostgresEventStreamer(dsn, schema=schema)),
        opened(PostgresRecordStore(dsn, schema=schema)),
        opened(PostgresRoleScheduler(dsn, schema=schema, ttl=1.0)),
    )
