"""The MySQL adapters' errors, the wrapping of driver errors into them, and their logger.

Every message is redacted (`actorflow._redact.redact`): a driver error may quote the
connection string, and a password must never reach an error message or a log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pymysql  # type: ignore[import-untyped,unused-ignore]

from actorflow._redact import redact
from actorflow.errors import ActorflowError

__all__ = ["MysqlConfigError", "MysqlError", "logger", "scrub", "wrap_exceptions"]

logger = logging.getLogger("actorflow.mysql")


class MysqlError(ActorflowError):
    """A MySQL/MariaDB operation failed (the driver's error is the cause)."""


class MysqlConfigError(MysqlError, ValueError):
    """The MySQL DSN is not one the adapters will use (refused before connecting)."""


# Named by their public home, so tracebacks and docs point at importable classes.
MysqlError.__module__ = "actorflow.adapters.mysql"
MysqlConfigError.__module__ = "actorflow.adapters.mysql"


def scrub(exc: BaseException) -> BaseException:
    """``exc`` with any password in its message redacted (in place): it is kept as a cause, printed in tracebacks."""
    args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in exc.args)
    if args != exc.args:
        exc.args = args
    return exc


@contextlib.contextmanager
def wrap_exceptions(what: str) -> Iterator[None]:
    """Turn driver errors into `MysqlError`, keeping them as the cause (the message redacted)."""
    try:
        yield
    except ActorflowError:
        raise
    except (pymysql.err.Error, OSError) as exc:
        msg = redact(f"{what}: {type(exc).__name__}: {exc}".strip())
        raise MysqlError(msg) from scrub(exc)
