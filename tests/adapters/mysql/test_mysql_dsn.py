"""Bad DSNs are refused before anything connects; a DSN's password is never shown.

A DSN must be ``mysql://`` and name its database (the adapters create tables there).
Errors, their causes and reprs show a DSN only redacted.
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from actorflow.adapters.mysql import (
    MysqlConfigError,
    MysqlError,
    MysqlEventStreamer,
    MysqlRecordStore,
    MysqlRoleScheduler,
    MysqlTimeoutStore,
    migrate,
)
from actorflow.errors import ActorflowError

pytestmark = pytest.mark.mysql

SECRET = "S3cr3t-Pw"  # noqa: S105 - the password that must never be shown

ADAPTERS: list[Callable[[str], Any]] = [MysqlRecordStore, MysqlEventStreamer, MysqlTimeoutStore, MysqlRoleScheduler]


@pytest.mark.parametrize(
    ("dsn", "complaint"),
    [
        ("", "DSN is required"),
        ("   ", "DSN is required"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306", "must name the database"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/", "must name the database"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/a/b", "must name the database"),
        (f"postgresql://root:{SECRET}@127.0.0.1:5432/db", "must start with mysql://"),
        (f"mariadb://root:{SECRET}@127.0.0.1/db", "must start with mysql://"),
        (f"root:{SECRET}@127.0.0.1/db", "must start with mysql://"),
        (f"//root:{SECRET}@127.0.0.1:abc/db", "must start with mysql://"),
        (f"mysql://root:{SECRET}@127.0.0.1:notaport/db", "invalid MySQL DSN"),
        (f"mysql://root:{SECRET}@/db", "must name the host"),
        (f"mysql://root:{SECRET}@127.0.0.1/db?ssl=1", "takes no options"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/mysql", "system database 'mysql'"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/information_schema", "system database 'information_schema'"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/performance_schema", "system database 'performance_schema'"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/sys", "system database 'sys'"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/MySQL", "system database 'MySQL'"),
        (f"mysql://root:{SECRET}@127.0.0.1:3306/%73ys", "system database 'sys'"),
    ],
)
@pytest.mark.parametrize("make", [*ADAPTERS, migrate], ids=lambda m: getattr(m, "__name__", str(m)))
def test_a_bad_dsn_is_refused_before_connecting(make: Callable[[str], Any], dsn: str, complaint: str) -> None:
    with pytest.raises(MysqlConfigError, match=complaint) as caught:
        make(dsn)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ActorflowError)
    assert isinstance(caught.value, MysqlError)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def _with_password(dsn: str, *, port: int | None = None) -> str:
    parts = urlsplit(dsn)
    return f"mysql://{parts.username or 'root'}:{SECRET}@{parts.hostname}:{port or parts.port or 3306}{parts.path}"


@pytest.mark.parametrize("make", ADAPTERS, ids=lambda m: m.__name__)
def test_the_repr_never_shows_the_password(make: Callable[[str], Any], mysql_server: str) -> None:
    adapter = make(_with_password(mysql_server))
    try:
        assert SECRET not in repr(adapter)
        assert SECRET not in repr(adapter.db)
        assert SECRET not in repr(adapter.db.settings)
        assert "***" in repr(adapter)
    finally:
        adapter.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("where", ["wrong password", "nothing listening"])
@pytest.mark.parametrize("make", ADAPTERS, ids=lambda m: m.__name__)
def test_a_failed_connection_never_shows_the_password(
    make: Callable[[str], Any], where: str, mysql_server: str
) -> None:
    """Opening fails with MysqlError and the driver's reason; no message, cause or traceback has the password."""
    dsn = _with_password(mysql_server, port=_free_port() if where == "nothing listening" else None)
    adapter = make(dsn)
    try:
        with pytest.raises(MysqlError) as caught:
            adapter.db.open()
    finally:
        adapter.close()
    shown = "".join(traceback.format_exception(caught.value))
    assert SECRET not in shown
    assert "cannot connect to MySQL" in str(caught.value)


def test_migrate_with_a_wrong_password_never_shows_it(mysql_server: str) -> None:
    with pytest.raises(MysqlError) as caught:
        migrate(_with_password(mysql_server))
    assert SECRET not in "".join(traceback.format_exception(caught.value))
