"""The MySQL adapters' errors, the wrapping of driver errors into them, and their logger.

Messages and the driver's errors kept as causes are redacted (`actorflow.adapters._sql.errors`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pymysql  # type: ignore[import-untyped,unused-ignore]

from actorflow.errors import ActorflowError

from .._sql.errors import scrub, wrap_driver_errors

__all__ = ["MysqlConfigError", "MysqlError", "logger", "scrub", "wrap_exceptions"]

logger = logging.getLogger("actorflow.mysql")


class MysqlError(ActorflowError):
    """A MySQL/MariaDB operation failed (the driver's error is the cause)."""


class MysqlConfigError(MysqlError, ValueError):
    """The MySQL DSN is not one the adapters will use (refused before connecting)."""


# Named by their public home, so tracebacks and docs point at importable classes.
MysqlError.__module__ = "actorflow.adapters.mysql"
MysqlConfigError.__module__ = "actorflow.adapters.mysql"


@contextlib.contextmanager
def wrap_exceptions(what: str) -> Iterator[None]:
    """Turn driver errors into `MysqlError`, keeping them as the cause (the message redacted)."""
    with wrap_driver_errors(what, MysqlError, (pymysql.err.Error, OSError)):
        yield
