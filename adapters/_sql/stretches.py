"""A batch of records split into stretches that one statement can store, for the SQL adapters.

SQLite (`_plan`) and PostgreSQL (`_groups`) store the consecutive plain next versions of
a batch with one statement, and every other record on its own. Both must split the
batch the same way and keep its order (version 1 then 2 of a run in one batch must both
apply), so the split is written once, here; each adapter says which records are plain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from actorflow.record import Record

__all__ = ["stretches"]


def stretches(records: Sequence[Record], plain: Callable[[Record], bool]) -> list[list[Record] | Record]:
    """``records`` in order: each stretch of consecutive plain ones a list, every other record on its own.

    A stretch holds no run twice: a run coming again starts a new stretch, after the
    one holding its earlier version.
    """
    out: list[list[Record] | Record] = []
    stretch: list[Record] = []
    runs: set[str] = set()
    for record in records:
        if not plain(record):
            out.append(record)
            stretch = []
            continue
        if not stretch or record.run_id in runs:
            stretch, runs = [], set()
            out.append(stretch)
        stretch.append(record)
        runs.add(record.run_id)
    return out
