"""PostgreSQL adapters (psycopg 3): records, timeouts and the event log in one database.

With `PostgresRecordStore` and `PostgresEventStreamer` on the same database and schema,
a transition is one commit (record, snapshot and event together) and no outbox relay
runs. Tables are created on first use; `migrate` (or ``actorflow db migrate``) applies
the versioned schema explicitly.

Needs the ``postgres`` extra: ``pip install "actorflow[postgres]"``.
"""

try:
    import psycopg  # noqa: F401 - checked here for a helpful message
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    msg = 'actorflow.adapters.postgres needs psycopg 3: pip install "actorflow[postgres]"'
    raise ImportError(msg) from exc

from ._errors import PostgresConfigError, PostgresError
from ._schema import drop_schema, migrate
from .recordstore import PostgresRecordStore
from .rolescheduler import PostgresRoleScheduler
from .streamer import PostgresEventStreamer
from .timeoutstore import PostgresTimeoutStore

__all__ = [
    "PostgresConfigError",
    "PostgresError",
    "PostgresEventStreamer",
    "PostgresRecordStore",
    "PostgresRoleScheduler",
    "PostgresTimeoutStore",
    "drop_schema",
    "migrate",
]
