"""PostgreSQL fixtures: the server's DSN, and a fresh schema per test (dropped afterwards).

Tests that need the server skip when it is away, unless ACTORFLOW_REQUIRE_SERVICES=1
(as in CI), which makes them fail instead. ACTORFLOW_TEST_DSN points them elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.services import unavailable

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TEST_DSN = os.environ.get("ACTORFLOW_TEST_DSN", DEFAULT_DSN)

_reachable: str | None = None


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server's DSN, once it answered (skips or fails when it does not)."""
    global _reachable  # noqa: PLW0603 - one check per session
    if _reachable is None:
        try:
            import psycopg
        except ImportError:
            unavailable('psycopg is not installed (pip install "actorflow[postgres]")')
        try:
            with psycopg.connect(TEST_DSN, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            unavailable(f"PostgreSQL at {TEST_DSN} is not reachable: {exc}")
        _reachable = TEST_DSN
    return _reachable


def _drop(dsn: str, schema: str) -> None:
    import psycopg

    # A terminated session lets go of its locks a moment later, and a thread still closing
    # may open one more: a drop that deadlocks with it is tried again (terminating again).
    for attempt in range(3):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (f"actorflow-{schema}"[:63],),
            )
            try:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise
            else:
                return


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema of its own for this test; dropped (with its sessions) afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    _drop(pg_dsn, schema)


@pytest.fixture
def make_pg_schema(pg_dsn: str) -> Iterator[object]:
    """Make extra fresh schemas within one test (each dropped afterwards)."""
    made: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        made.append(schema)
        return schema

    yield make
    for schema in made:
        _drop(pg_dsn, schema)
