"""Reading result rows leniently: a value the driver cannot load spoils only its own row."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.adapt import Buffer, Transformer
from psycopg.types.datetime import TimestamptzLoader

__all__ = ["rows_of"]


class _LenientTimestamptzLoader(TimestamptzLoader):
    """Reads a time Python cannot hold (``infinity``, past year 9999) as its text, not an error.

    The row holding it is then unreadable on its own (see `actorflow.adapters._sql`), instead
    of the whole result failing to load.
    """

    def load(self, data: Buffer) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8", "replace")


def rows_of(cur: psycopg.Cursor[Any]) -> list[Any]:
    """Every row of ``cur``'s result; a value the driver cannot load comes back as its text.

    A time at ``-infinity`` (or past year 9999) then makes only its row unreadable,
    never a whole list; nothing is sent again (the result received is loaded again).
    """
    try:
        return cur.fetchall()
    except psycopg.DataError:
        result = cur.pgresult
        if result is None:
            raise
        lenient = cur.connection.cursor()
        lenient.adapters.register_loader("timestamptz", _LenientTimestamptzLoader)
        loader = Transformer(lenient)
        loader.set_pgresult(result)
        return loader.load_rows(0, result.ntuples, tuple)
