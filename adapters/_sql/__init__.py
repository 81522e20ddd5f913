"""What the SQL adapters (SQLite, PostgreSQL, MySQL) share: rows, filters, headers, retention, SQL files.

Rows <-> records, filter clauses, header encoding and event retention; and one
convention for their SQL: the named-query loader (``queries.py``) and the migrations
(``migrations.py``: files, runner, bookkeeping table). Dialect-free Python only; each
adapter keeps its own SQL, in its ``queries.sql`` and ``migrations/``. Filter clauses are
written with ``%s`` placeholders here and translated by the SQLite adapter.

Beside them, in their own modules: the fleet tables and fencing (``fleet.py``), driver
errors wrapped and redacted (``errors.py``), in-process wake-ups for the dialects
without LISTEN (``wakeups.py``), what the event streamers share (``streaming.py``), and
the base classes of the adapters on a database server (``server.py``), and a batch split
into the stretches one statement stores (``stretches.py``).
"""

from .migrations import Migration, Session, apply_migrations, load_migrations, needs_migrating
from .queries import load_queries
from .retention import DEFAULT_RETENTION, Retention
from .rows import (
    RECORD_COLUMNS,
    TIMEOUT_COLUMNS,
    count_rows,
    decode_headers,
    decode_run_ids,
    encode_headers,
    event_from_row,
    event_row,
    filter_clause,
    outbox_from_rows,
    outbox_row,
    page_clause,
    page_from_rows,
    read_record,
    readable_records,
    readable_timeouts,
    record_event_row,
    record_from_row,
    record_params,
    records_by_run,
    sort_direction,
    timeout_from_row,
    timeout_params,
    update_params,
)

__all__ = [
    "DEFAULT_RETENTION",
    "RECORD_COLUMNS",
    "TIMEOUT_COLUMNS",
    "Migration",
    "Retention",
    "Session",
    "apply_migrations",
    "count_rows",
    "decode_headers",
    "decode_run_ids",
    "encode_headers",
    "event_from_row",
    "event_row",
    "filter_clause",
    "load_migrations",
    "load_queries",
    "needs_migrating",
    "outbox_from_rows",
    "outbox_row",
    "page_clause",
    "page_from_rows",
    "read_record",
    "readable_records",
    "readable_timeouts",
    "record_event_row",
    "record_from_row",
    "record_params",
    "records_by_run",
    "sort_direction",
    "timeout_from_row",
    "timeout_params",
    "update_params",
]
