"""Driver errors -> an adapter's own error, redacted: for the adapters on a database server.

Every message is redacted (`actorflow._redact.redact`): a driver error may quote the
connection string, and a password must never reach an error message or a log. The
driver's error is kept as the cause, its own message redacted too (`scrub`): tracebacks
print it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from actorflow._redact import redact
from actorflow.errors import ActorflowError

__all__ = ["describe", "scrub", "wrap_driver_errors"]


def scrub(exc: BaseException) -> BaseException:
    """``exc`` with any password in its message redacted (in place): it is kept as a cause, printed in tracebacks."""
    args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in exc.args)
    if args != exc.args:
        exc.args = args
    return exc


def describe(exc: BaseException) -> str:
    """What a driver's error says: its type and message."""
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def wrap_driver_errors(
    what: str,
    error: Callable[[str], ActorflowError],
    caught: type[BaseException] | tuple[type[BaseException], ...],
    explain: Callable[[BaseException], str] = describe,
) -> Iterator[None]:
    """Turn ``caught`` errors into ``error("<what>: <explain(exc)>")``, keeping them as the cause (redacted).

    An `ActorflowError` raised inside (the adapter's own, already wrapped) passes as it is.
    """
    try:
        yield
    except ActorflowError:
        raise
    except caught as exc:
        msg = redact(f"{what}: {explain(exc)}".strip())
        raise error(msg) from scrub(exc)
