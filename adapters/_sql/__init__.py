"""What the SQL adapters (SQLite, PostgreSQL) share: rows <-> records, filters, headers, retention.

Dialect-free Python only; each adapter keeps its own SQL. Placeholders are written as
``%s`` here and translated by the SQLite adapter.
"""

from .retention import DEFAULT_RETENTION, Retention
from .rows import (
    RECORD_COLUMNS,
    TIMEOUT_COLUMNS,
    decode_headers,
    decode_run_ids,
    encode_headers,
    event_from_row,
    event_row,
    filter_clause,
    outbox_from_rows,
    outbox_row,
    read_record,
    readable_records,
    readable_timeouts,
    record_event_row,
    record_from_row,
    record_params,
    records_by_run,
    sort_direction,
    timeout_from_row,
    update_params,
)

__all__ = [
    "DEFAULT_RETENTION",
    "RECORD_COLUMNS",
    "TIMEOUT_COLUMNS",
    "Retention",
    "decode_headers",
    "decode_run_ids",
    "encode_headers",
    "event_from_row",
    "event_row",
    "filter_clause",
    "outbox_from_rows",
    "outbox_row",
    "read_record",
    "readable_records",
    "readable_timeouts",
    "record_event_row",
    "record_from_row",
    "record_params",
    "records_by_run",
    "sort_direction",
    "timeout_from_row",
    "update_params",
]
