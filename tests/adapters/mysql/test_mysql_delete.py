"""Data deletion on MySQL: the deleted object is left in no row of any table of the database.

The feature suite's check of the raw rows (tests/features/test_delete.py) reads SQLite and
PostgreSQL tables; this is the same check on a MySQL/MariaDB database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore, MysqlTimeoutStore
from tests.adapters.mysql.conftest import connect_admin
from tests.model import FAST, Order, Status
from tests.waiting import eventually

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(60)]

CARD_NOTE = "card 4242"  # in the object the run stores, and nowhere else


def _raw_rows(dsn: str) -> Iterator[str]:
    """Every row of every table of the database as text (bytes as text and as hex)."""
    conn = connect_admin(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = [row[0] for row in cur.fetchall()]
            for table in tables:
                cur.execute(f"SELECT * FROM `{table}`")  # noqa: S608 - the database's own table names
                for row in cur.fetchall():
                    yield repr([v.decode(errors="replace") + v.hex() if isinstance(v, bytes) else v for v in row])
    finally:
        conn.close()


def test_a_deletion_leaves_the_original_object_in_no_row(mysql_dsn: str, opened: Any) -> None:
    """Records, snapshots, events and outbox: after DATA_DELETED no row holds the object, as text or hex."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = b.build(
        opened(MysqlEventStreamer(mysql_dsn)),
        opened(MysqlRecordStore(mysql_dsn)),
        MemoryRoleScheduler(),
        timeout_store=opened(MysqlTimeoutStore(mysql_dsn)),
        defaults=FAST,
    )
    wf.run()
    try:
        run_id = wf.trigger("o-1", Order(id="o-1", amount=42, notes=[CARD_NOTE]))
        wf.await_status("o-1", run_id, Status.DONE, timeout=10)
        secret = CARD_NOTE.encode()
        assert any(CARD_NOTE in row or secret.hex() in row for row in _raw_rows(mysql_dsn)), "the check sees nothing"
        wf.delete_data(run_id, "gdpr request")
        eventually(
            lambda: wf.record_store.lookup(run_id).run_state is af.RunState.DATA_DELETED,
            timeout=10,
            what="the deletion",
        )
    finally:
        wf.stop()
    leaks = [row for row in _raw_rows(mysql_dsn) if CARD_NOTE in row or secret.hex() in row]
    assert not leaks, f"the deleted object is still stored: {leaks}"
    assert {r.object for r in wf.record_store.snapshots(run_id)} == {b'{"result":"deleted"}'}
