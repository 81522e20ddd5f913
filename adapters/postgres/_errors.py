"""The PostgreSQL adapters' error, the wrapping of driver errors into it, and their logger."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg
import psycopg_pool

from actorflow.errors import ActorflowError

__all__ = ["PostgresError", "logger", "wrap_exceptions"]

logger = logging.getLogger("actorflow.postgres")


class PostgresError(ActorflowError):
    """A PostgreSQL operation failed (the driver's error is the cause)."""


# Named by its public home, so tracebacks and docs point at an importable class.
PostgresError.__module__ = "actorflow.adapters.postgres"


@contextlib.contextmanager
def wrap_exceptions(what: str) -> Iterator[None]:
    """Turn driver and pool errors into `PostgresError`, keeping them as the cause."""
    try:
        yield
    except ActorflowError:
        raise
    except psycopg_pool.PoolTimeout as exc:
        msg = f"{what}: no database connection within the pool timeout ({exc})"
        raise PostgresError(msg) from exc
    except psycopg.Error as exc:
        msg = f"{what}: {type(exc).__name__}: {exc}".strip()
        raise PostgresError(msg) from exc
