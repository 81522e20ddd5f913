"""What the SQL adapters (SQLite, PostgreSQL) share: rows <-> records, filters, headers.

Dialect-free Python only; each adapter keeps its own SQL. Placeholders are written as
``%s`` here and translated by the SQLite adapter.
"""

from .rows import (
    RECORD_COLUMNS,
    TIMEOUT_COLUMNS,
    decode_headers,
    decode_run_ids,
    encode_headers,
    filter_clause,
    record_from_row,
    record_params,
    timeout_from_row,
)

__all__ = [
    "RECORD_COLUMNS",
    "TIMEOUT_COLUMNS",
    "decode_headers",
    "decode_run_ids",
    "encode_headers",
    "filter_clause",
    "record_from_row",
    "record_params",
    "timeout_from_row",
]
