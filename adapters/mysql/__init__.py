"""MySQL/MariaDB adapters (PyMySQL): records, timeouts, the event log and role leases in one database.

With `MysqlRecordStore` and `MysqlEventStreamer` on the same database, a transition is
one commit (record, snapshot and event together) and no outbox relay runs. Tables are
created on first use; `migrate` applies the versioned schema explicitly. A DSN is
``mysql://user[:password]@host[:port]/database``. Developed against MariaDB 10.11 (the
schema uses its ``utf8mb4_nopad_bin`` collation).

Needs the ``mysql`` extra: ``pip install "actorflow[mysql]"``.
"""

try:
    import pymysql  # type: ignore[import-untyped,unused-ignore]  # noqa: F401 - checked here for a helpful message
except ImportError as exc:  # pragma: no cover - depends on the environment
    msg = 'actorflow.adapters.mysql needs PyMySQL: pip install "actorflow[mysql]"'
    raise ImportError(msg) from exc

from ._errors import MysqlConfigError, MysqlError
from ._schema import migrate
from .recordstore import MysqlRecordStore
from .rolescheduler import MysqlRoleScheduler
from .streamer import MysqlEventStreamer
from .timeoutstore import MysqlTimeoutStore

__all__ = [
    "MysqlConfigError",
    "MysqlError",
    "MysqlEventStreamer",
    "MysqlRecordStore",
    "MysqlRoleScheduler",
    "MysqlTimeoutStore",
    "migrate",
]
