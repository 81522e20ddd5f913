"""Where the MySQL adapters connect: the DSN, checked and parsed, and one connection set up for the adapters.

A DSN is ``mysql://user[:password]@host[:port]/database``: it must use that scheme and
name its database (the adapters create tables there), not one of the server's own
(`SYSTEM_DATABASES`), or it is refused before anything connects (`MysqlConfigError`). A DSN is only ever shown redacted
(`actorflow._redact.redact`): the parsed settings keep the password out of their repr.

Every connection is set up the same way: autocommit (the adapters open their
transactions explicitly), UTC as the session time zone (``NOW(6)`` and stored times are
UTC), READ COMMITTED (every statement reads a fresh snapshot, and no gap locks), a
short lock wait, and strict SQL mode (a value too long is an error, never truncated).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql  # type: ignore[import-untyped,unused-ignore]
from pymysql.constants import CLIENT  # type: ignore[import-untyped,unused-ignore]

from actorflow._redact import redact

from ._errors import MysqlConfigError, MysqlError, scrub

__all__ = ["CONNECT_TIMEOUT", "LOCK_WAIT_SECONDS", "SYSTEM_DATABASES", "Settings", "connect", "parse_dsn"]

CONNECT_TIMEOUT = 10
"""Seconds to wait for a connection."""
READ_TIMEOUT = 60
"""Seconds to wait for an answer before the connection counts as lost (a frozen server, a cut network)."""
LOCK_WAIT_SECONDS = 5
"""The longest a statement waits for a row lock before it fails (InnoDB's ``innodb_lock_wait_timeout``)."""
IDLE_TRANSACTION_SECONDS = 5
"""How long the server lets a transaction sit idle before it ends the session (MariaDB's
``idle_transaction_timeout``): a client frozen inside a transaction (a node SIGSTOPped or
cut off between two statements of a fenced commit) must not keep its lease rows locked,
or no other node could take its roles. PostgreSQL's adapter sets its
``idle_in_transaction_session_timeout`` for the same reason."""
DEFAULT_PORT = 3306
SYSTEM_DATABASES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
"""The server's own databases (compared in any case): a DSN naming one is refused, as PostgreSQL's
adapters refuse ``pg_catalog`` and ``information_schema`` for a schema."""

_SESSION = (
    "SET SESSION time_zone = '+00:00', "
    f"SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}, "
    f"SESSION idle_transaction_timeout = {IDLE_TRANSACTION_SECONDS}, "
    "SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)
_ISOLATION = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Where to connect, parsed from a DSN (the password is left out of the repr)."""

    host: str
    port: int
    user: str
    database: str
    password: str = dataclasses.field(default="", repr=False)

    @property
    def identity(self) -> tuple[str, int, str]:
        """What makes two adapters share a database: server and database."""
        return self.host.lower(), self.port, self.database


def parse_dsn(dsn: str) -> Settings:
    """The settings of ``dsn``; `MysqlConfigError` (a `ValueError`, nothing connected) when it is not one.

    The form is ``mysql://user[:password]@host[:port]/database``; user, password and
    database may be percent-encoded. Query options are refused: none is supported yet.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        msg = f"a MySQL DSN is required, e.g. mysql://user@host:3306/db, got {dsn!r}"
        raise MysqlConfigError(msg)
    parts = urlsplit(dsn.strip())
    if parts.scheme.lower() != "mysql" or "://" not in dsn:
        # Not shown at all, even redacted: without "scheme://" redact cannot tell where a password is.
        what = f"the scheme {parts.scheme!r}" if "://" in dsn and parts.scheme else "no scheme"
        msg = f"a MySQL DSN must start with mysql:// (mysql://user[:password]@host[:port]/database), got {what}"
        raise MysqlConfigError(msg)
    shown = redact(dsn)
    try:
        port = parts.port
    except ValueError:
        msg = f"invalid MySQL DSN {shown!r}: expected mysql://user[:password]@host[:port]/database"
        raise MysqlConfigError(msg) from None
    if not parts.hostname:
        msg = f"the MySQL DSN must name the host (mysql://user@HOST:3306/db), got {shown!r}"
        raise MysqlConfigError(msg)
    database = unquote(parts.path.removeprefix("/"))
    if not database.strip() or "/" in database:
        msg = f"the MySQL DSN must name the database (mysql://user@host:3306/DB), got {shown!r}"
        raise MysqlConfigError(msg)
    if database.lower() in SYSTEM_DATABASES:
        # The adapters create their tables in the database named: never in the server's own.
        msg = (
            f"the MySQL DSN names the system database {database!r} "
            f"({', '.join(sorted(SYSTEM_DATABASES))} are the server's): name a database of your own, got {shown!r}"
        )
        raise MysqlConfigError(msg)
    if parts.query or parts.fragment:
        msg = f"the MySQL DSN takes no options (?...), got {shown!r}"
        raise MysqlConfigError(msg)
    return Settings(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        user=unquote(parts.username or ""),
        database=database,
        password=unquote(parts.password or ""),
    )


def connect(settings: Settings, dsn: str, **overrides: Any) -> Any:
    """A connection set up for the adapters (see the module's notes); `MysqlError` with the driver's reason if none.

    ``dsn`` is what the user gave, named in the message redacted: the message, and the
    driver's error kept as its cause, show no password.
    """
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password,
        "database": settings.database,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "write_timeout": READ_TIMEOUT,
        "binary_prefix": True,  # bytes are sent as _binary'...': a BLOB never goes through the charset
        # An UPDATE's row count is the rows it matched, not only those it changed.
        "client_flag": CLIENT.FOUND_ROWS,
        "init_command": _SESSION,
        **overrides,
    }
    try:
        conn = pymysql.connect(**options)
    except pymysql.err.Error as exc:
        msg = redact(f"cannot connect to MySQL at {settings.host}:{settings.port} ({redact(dsn)!r}): {exc}")
        raise MysqlError(msg) from scrub(exc)
    try:
        with conn.cursor() as cur:
            cur.execute(_ISOLATION)
    except pymysql.err.Error as exc:
        conn.close()
        msg = redact(f"cannot set up a MySQL session ({redact(dsn)!r}): {exc}")
        raise MysqlError(msg) from scrub(exc)
    return conn
