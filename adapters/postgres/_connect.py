"""Where the PostgreSQL adapters connect: the schema name check, the connection string, one direct connection.

Both the DSN and the schema are checked before anything connects (`PostgresConfigError`):
the DSN must name its database (libpq would otherwise pick one, PGDATABASE or the user's
name, and migrate tables there), and the schema must be a plain identifier outside the
ones PostgreSQL reserves. A DSN is only ever shown redacted (`actorflow._redact.redact`).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actorflow._redact import redact

from ._errors import PostgresConfigError, PostgresError, scrub

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_IN_TRANSACTION_MS",
    "LOCK_TIMEOUT_MS",
    "STUCK_AFTER",
    "application_name",
    "check_schema",
    "connect_once",
    "conninfo",
]

IDLE_IN_TRANSACTION_MS = 5000
"""A session idle inside a transaction this long is ended by the server (a frozen client's)."""
LOCK_TIMEOUT_MS = 2000
"""The longest a statement waits for a lock before it fails (and stuck sessions are looked for)."""
STUCK_AFTER = IDLE_IN_TRANSACTION_MS / 1000
"""Seconds a session may wait on its client in the middle of a statement before it counts as stuck."""

_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

CONNECT_TIMEOUT = 10
"""Seconds to wait for a connection (libpq's ``connect_timeout``, unless the DSN sets one)."""


def check_schema(schema: str) -> str:
    """``schema`` if the adapters may use it, else `PostgresConfigError` (a `ValueError`).

    It must be a plain identifier (it is used in SQL), and not one PostgreSQL reserves:
    ``information_schema`` and any ``pg_`` name (``pg_catalog``, ``pg_toast``...), in any
    case (an unquoted name is folded to lower case).
    """
    if not isinstance(schema, str) or not _SCHEMA.match(schema):
        msg = f"schema must be a plain identifier (letters, digits, _), got {schema!r}"
        raise PostgresConfigError(msg)
    folded = schema.lower()
    if folded == "information_schema" or folded.startswith("pg_"):
        msg = f"schema {schema!r} is reserved by PostgreSQL (information_schema, pg_*): choose another"
        raise PostgresConfigError(msg)
    return schema


def application_name(schema: str) -> str:
    """The ``application_name`` of the sessions on ``schema``: an operator (or a test) can find, and cut, them."""
    return f"actorflow-{schema}"[:63]


def conninfo(dsn: str, schema: str) -> str:
    """``dsn`` as a libpq connection string whose sessions work in ``schema``, in UTC, and are named for it.

    `PostgresConfigError` (nothing connected) when ``dsn`` is empty, does not parse, or
    does not name its database: ``postgresql://host`` (or ``postgresql://``) would let
    libpq choose one (PGDATABASE, else the user's name) and migrate tables into it.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        msg = f"a PostgreSQL DSN is required, e.g. postgresql://user@host:5432/db, got {dsn!r}"
        raise PostgresConfigError(msg)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        # The driver's reason may quote part of the DSN: redacted, and not kept as the cause.
        msg = redact(f"invalid PostgreSQL DSN {redact(dsn)!r}: {str(exc).strip()}")
        raise PostgresConfigError(msg) from None
    if not str(params.get("dbname") or "").strip():
        msg = f"the PostgreSQL DSN must name the database (postgresql://host:5432/DB or dbname=DB), got {redact(dsn)!r}"
        raise PostgresConfigError(msg)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params.setdefault("application_name", application_name(schema))
    options = str(params.get("options") or "")
    # A session that sits inside a transaction for this long is a frozen (SIGSTOPped, cut off)
    # node's: the server ends it, and the lease rows its fenced write share-locked are free for
    # the role's next holder. Our transactions never wait on the client: they are pipelined.
    # A frozen client can also stop in the middle of a pipeline, where the session stays
    # "active" and no server timeout applies: no statement waits for a lock past
    # LOCK_TIMEOUT_MS, and a lock timeout ends such stuck sessions (`Database.run`).
    # First, so a DSN's own options may set them otherwise.
    timeouts = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} -c lock_timeout={LOCK_TIMEOUT_MS}"
    params["options"] = f"{timeouts} {options} -c search_path={schema} -c timezone=UTC".replace("  ", " ")
    return make_conninfo("", **params)


def connect_once(info: str, dsn: str, **overrides: Any) -> psycopg.Connection[Any]:
    """A direct (unpooled, autocommit) connection; `PostgresError` with the driver's reason if there is none.

    ``dsn`` is what the user gave, named in the message (``info`` is the built string),
    redacted: the message, and the driver's error kept as its cause, show no password.
    """
    try:
        return psycopg.connect(info, autocommit=True, **overrides)
    except psycopg.Error as exc:
        host = conninfo_to_dict(info).get("host", "localhost")
        msg = redact(f"cannot connect to PostgreSQL at {host!r} ({redact(dsn)!r}): {exc}".strip())
        raise PostgresError(msg) from scrub(exc)
