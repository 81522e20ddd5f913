"""The PostgreSQL adapters' errors, the wrapping of driver errors into them, and their logger.

Every message is redacted (`actorflow._redact.redact`): a driver error may quote the
connection string, and a password must never reach an error message or a log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg
import psycopg_pool

from actorflow._redact import redact
from actorflow.errors import ActorflowError

__all__ = ["PostgresConfigError", "PostgresError", "logger", "scrub", "wrap_exceptions"]

logger = logging.getLogger("actorflow.postgres")


class PostgresError(ActorflowError):
    """A PostgreSQL operation failed (the driver's error is the cause)."""


class PostgresConfigError(PostgresError, ValueError):
    """The PostgreSQL DSN or schema is not one the adapters will use (refused before connecting)."""


# Named by their public home, so tracebacks and docs point at importable classes.
PostgresError.__module__ = "actorflow.adapters.postgres"
PostgresConfigError.__module__ = "actorflow.adapters.postgres"


def scrub(exc: BaseException) -> BaseException:
    """``exc`` with any password in its message redacted (in place): it is kept as a cause, printed in tracebacks."""
    args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in exc.args)
    if args != exc.args:
        exc.args = args
    return exc


@contextlib.contextmanager
def wrap_exceptions(what: str) -> Iterator[None]:
    """Turn driver and pool errors into `PostgresError`, keeping them as the cause (the message redacted)."""
    try:
        yield
    except ActorflowError:
        raise
    except psycopg_pool.PoolTimeout as exc:
        msg = redact(f"{what}: no database connection within the pool timeout ({exc})")
        raise PostgresError(msg) from scrub(exc)
    except psycopg.Error as exc:
        msg = redact(f"{what}: {type(exc).__name__}: {exc}".strip())
        raise PostgresError(msg) from scrub(exc)
