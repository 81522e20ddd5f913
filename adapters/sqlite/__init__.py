"""SQLite adapters: the embedded durable default. One file, no server, crash-safe.

`SqliteRecordStore`, `SqliteTimeoutStore` and `SqliteEventStreamer` share one database
file (WAL mode, ``synchronous=FULL`` by default). With the record store and the event
streamer on the same file, a transition is a single commit: the step's event is written
in the record's own transaction and no outbox relay runs. Only the standard library's
`sqlite3` is needed.

Usage::

    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore

    path = "var/orders.db"
    wf = builder.build(SqliteEventStreamer(path), SqliteRecordStore(path), MemoryRoleScheduler(),
                       timeout_store=SqliteTimeoutStore(path))

Several processes may use one file (SQLite serialises their writes), but they must be
on one machine: SQLite's locking does not work over network file systems.
"""

from __future__ import annotations

import os

from ._db import Database, SqliteError
from .recordstore import SqliteRecordStore
from .rolescheduler import SqliteRoleScheduler
from .streamer import SqliteEventStreamer
from .timeoutstore import SqliteTimeoutStore

__all__ = [
    "SqliteError",
    "SqliteEventStreamer",
    "SqliteRecordStore",
    "SqliteRoleScheduler",
    "SqliteTimeoutStore",
    "migrate",
]


def migrate(path: str | os.PathLike[str]) -> list[int]:
    """Create or upgrade the tables of the database at ``path``; the versions applied now.

    The adapters do this themselves on first use; call it to prepare a file ahead of
    time. Idempotent (a second call applies nothing and returns ``[]``) and safe while
    other processes open the same file.
    """
    db = Database(path)
    try:
        db.connection()
        return list(db.applied)
    finally:
        db.close()
