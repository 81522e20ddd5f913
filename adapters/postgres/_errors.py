"""The PostgreSQL adapters' errors, the wrapping of driver errors into them, and their logger.

Messages and the driver's errors kept as causes are redacted (`actorflow.adapters._sql.errors`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg
import psycopg_pool

from actorflow.errors import ActorflowError

from .._sql.errors import describe, scrub, wrap_driver_errors

__all__ = ["PostgresConfigError", "PostgresError", "logger", "scrub", "wrap_exceptions"]

logger = logging.getLogger("actorflow.postgres")


class PostgresError(ActorflowError):
    """A PostgreSQL operation failed (the driver's error is the cause)."""


class PostgresConfigError(PostgresError, ValueError):
    """The PostgreSQL DSN or schema is not one the adapters will use (refused before connecting)."""


# Named by their public home, so tracebacks and docs point at importable classes.
PostgresError.__module__ = "actorflow.adapters.postgres"
PostgresConfigError.__module__ = "actorflow.adapters.postgres"


def _explain(exc: BaseException) -> str:
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return f"no database connection within the pool timeout ({exc})"
    return describe(exc)


@contextlib.contextmanager
def wrap_exceptions(what: str) -> Iterator[None]:
    """Turn driver and pool errors into `PostgresError`, keeping them as the cause (the message redacted)."""
    with wrap_driver_errors(what, PostgresError, psycopg.Error, _explain):  # a PoolTimeout is a psycopg.Error
        yield
