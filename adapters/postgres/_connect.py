"""Where the PostgreSQL adapters connect: the schema name check, the connection string, one direct connection."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ._errors import PostgresError

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
    """``schema`` if it is a plain identifier (it is used in SQL), else `ValueError`."""
    if not _SCHEMA.match(schema):
        msg = f"schema must be a plain identifier (letters, digits, _), got {schema!r}"
        raise ValueError(msg)
    return schema


def application_name(schema: str) -> str:
    """The ``application_name`` of the sessions on ``schema``: an operator (or a test) can find, and cut, them."""
    return f"actorflow-{schema}"[:63]


def conninfo(dsn: str, schema: str) -> str:
    """``dsn`` as a libpq connection string whose sessions work in ``schema``, in UTC, and are named for it."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        msg = f"invalid PostgreSQL DSN {dsn!r}: {exc}"
        raise PostgresError(msg) from exc
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

    ``dsn`` is what the user gave, named in the message (``info`` is the built string).
    """
    try:
        return psycopg.connect(info, autocommit=True, **overrides)
    except psycopg.Error as exc:
        host = conninfo_to_dict(info).get("host", "localhost")
        msg = f"cannot connect to PostgreSQL at {host!r} ({dsn!r}): {exc}".strip()
        raise PostgresError(msg) from exc
