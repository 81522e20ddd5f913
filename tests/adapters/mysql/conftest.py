"""MariaDB/MySQL fixtures: the server, and a fresh database per test (dropped afterwards).

Tests that need the server skip when it is away, unless ACTORFLOW_REQUIRE_SERVICES=1
(as in CI), which makes them fail instead. ACTORFLOW_TEST_MYSQL_DSN points them at
another server: a DSN whose database is only used to connect (each test makes its own).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.services import unavailable

DEFAULT_DSN = "mysql://root@127.0.0.1:3306/test"
SERVER_DSN = os.environ.get("ACTORFLOW_TEST_MYSQL_DSN", DEFAULT_DSN)

_reachable: str | None = None


def connect_admin(dsn: str) -> Any:
    """A plain autocommit PyMySQL connection to ``dsn`` (for setting tests up, not through the adapters)."""
    import pymysql

    parts = urlsplit(dsn)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/") or None,
        autocommit=True,
        connect_timeout=5,
    )


def with_database(dsn: str, database: str) -> str:
    """``dsn`` naming another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def mysql_server() -> str:
    """The test server's DSN, once it answered (skips, or fails under ACTORFLOW_REQUIRE_SERVICES=1)."""
    global _reachable  # noqa: PLW0603 - one check per session
    if _reachable is None:
        try:
            import pymysql
        except ImportError:
            unavailable('PyMySQL is not installed (pip install "actorflow[mysql]")')
        try:
            conn = connect_admin(SERVER_DSN)
        except pymysql.err.Error as exc:
            unavailable(f"MariaDB/MySQL at {urlsplit(SERVER_DSN).hostname} is not reachable: {exc}")
        conn.close()
        _reachable = SERVER_DSN
    return _reachable


def _drop(server: str, database: str) -> None:
    conn = connect_admin(server)
    try:
        with conn.cursor() as cur:
            # Cut the sessions still on it (a thread closing late), then drop it.
            cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s", (database,))
            for (session,) in cur.fetchall():
                with contextlib.suppress(Exception):  # it ended on its own meanwhile
                    cur.execute(f"KILL {int(session)}")
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        conn.close()


@pytest.fixture
def make_mysql_database(mysql_server: str) -> Iterator[Callable[[], str]]:
    """Make fresh databases within one test (each dropped afterwards); each call gives one's DSN."""
    made: list[str] = []

    def make() -> str:
        database = f"actorflow_t_{uuid.uuid4().hex[:12]}"
        conn = connect_admin(mysql_server)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        made.append(database)
        return with_database(mysql_server, database)

    yield make
    for database in made:
        _drop(mysql_server, database)


@pytest.fixture
def mysql_dsn(make_mysql_database: Callable[[], str]) -> str:
    """The DSN of a fresh database of this test's own (dropped afterwards)."""
    return make_mysql_database()
