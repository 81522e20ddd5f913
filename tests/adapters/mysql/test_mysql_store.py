"""What the MySQL adapters add to the conformance suites: the schema, migrations, one commit per transition, reconnects."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.mysql import MysqlError, MysqlEventStreamer, MysqlRecordStore, migrate
from actorflow.adapters.mysql._schema import migrations, statements
from actorflow.event import event_topic
from actorflow.runstate import RunState
from actorflow.testing.adaptertest._records import dummy_record, next_version
from actorflow.testing.adaptertest.eventstreamer import collect
from tests.adapters.mysql.conftest import connect_admin
from tests.adapters.sql_schema import INDEXES, TABLES
from tests.model import Item, Stage, two_steps
from tests.waiting import eventually

pytestmark = pytest.mark.mysql


def _query(dsn: str, sql: str, params: Any = ()) -> list[Any]:
    conn = connect_admin(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def store(mysql_dsn: str) -> Iterator[MysqlRecordStore]:
    made = MysqlRecordStore(mysql_dsn)
    yield made
    made.close()


def test_migrate_creates_every_table_once_and_records_its_version(mysql_dsn: str) -> None:
    assert migrate(mysql_dsn) == [1]
    assert migrate(mysql_dsn) == []
    tables = {row[0] for row in _query(mysql_dsn, "SHOW TABLES")}
    assert tables >= TABLES | {"actorflow_migrations", "workflow_event_sequence"}
    indexes = {
        row[0]
        for row in _query(
            mysql_dsn, "SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE()"
        )
    }
    assert indexes >= INDEXES
    engines = {
        row[0]
        for row in _query(mysql_dsn, "SELECT engine FROM information_schema.tables WHERE table_schema = DATABASE()")
    }
    assert engines == {"InnoDB"}
    assert [v for (v,) in _query(mysql_dsn, "SELECT version FROM actorflow_migrations")] == [1]


def test_a_database_migrated_by_a_newer_release_is_refused(mysql_dsn: str) -> None:
    migrate(mysql_dsn)
    _query(
        mysql_dsn, "INSERT INTO actorflow_migrations (version, name) VALUES (%s, 'future')", (len(migrations()) + 1,)
    )
    with pytest.raises(MysqlError, match="newer than this actorflow knows"):
        migrate(mysql_dsn)


def test_a_migration_cut_off_half_way_is_finished_by_the_next_run(mysql_dsn: str) -> None:
    """MySQL commits each DDL statement: the scripts are written to be run again."""
    script = migrations()[0].script
    for statement in statements(script)[:3]:
        _query(mysql_dsn, statement)
    assert migrate(mysql_dsn) == [1]
    assert {row[0] for row in _query(mysql_dsn, "SHOW TABLES")} >= TABLES


def test_the_unfinished_foreign_id_column_is_null_once_the_run_finishes(
    store: MysqlRecordStore, mysql_dsn: str
) -> None:
    first = dummy_record()
    store.store(first)
    sql = "SELECT unfinished_foreign_id FROM workflow_records WHERE run_id = %s"
    assert _query(mysql_dsn, sql, (first.run_id,)) == [(first.foreign_id,)]
    store.store(next_version(first, run_state=RunState.COMPLETED))
    assert _query(mysql_dsn, sql, (first.run_id,)) == [(None,)]
    second = dummy_record()
    store.store(second)  # the finished run no longer holds the foreign id
    assert store.latest(second.workflow_name, second.foreign_id) == second


def test_ids_differing_only_by_trailing_spaces_or_case_are_different_runs(store: MysqlRecordStore) -> None:
    """The binary NO PAD collation: "a" and "a " are two foreign ids, as elsewhere."""
    records = [dummy_record(foreign_id=fid) for fid in ("a", "a ", "A")]
    for record in records:
        store.store(record)
    for record in records:
        assert store.latest(record.workflow_name, record.foreign_id) == record


def test_with_the_streamer_on_the_same_database_a_transition_is_one_commit(mysql_dsn: str) -> None:
    """publish_directly: the event is in the log, the outbox stays empty."""
    store, streamer = MysqlRecordStore(mysql_dsn), MysqlEventStreamer(mysql_dsn)
    try:
        record = dummy_record()
        assert store.publish_directly(record.workflow_name, streamer)
        assert not store.publish_directly(
            record.workflow_name, MysqlEventStreamer(mysql_dsn.replace("/actorflow_t_", "/other_"))
        )
        store.store(record)
        assert store.list_outbox_events(record.workflow_name, 10) == []
        receiver = streamer.new_receiver(event_topic(record), "reader")
        events = collect(receiver, 1)
        assert [e.run_id for e in events] == [record.run_id]
        receiver.close()
    finally:
        store.close()
        streamer.close()


def test_a_connection_the_server_cut_is_replaced(store: MysqlRecordStore, mysql_dsn: str) -> None:
    """The server ends every session of the store (a restart, KILL): the next call reconnects."""
    record = dummy_record()
    store.store(record)
    database = mysql_dsn.rsplit("/", 1)[1]
    for (session,) in _query(
        mysql_dsn, "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (database,)
    ):
        _query(mysql_dsn, f"KILL {int(session)}")
    assert store.lookup(record.run_id) == record
    assert store.store_many([next_version(record)]) == [None]


def test_an_error_is_counted_once_per_call(store: MysqlRecordStore) -> None:
    assert [store.add_error("p@1", "run") for _ in range(3)] == [1, 2, 3]
    store.clear_errors("p@1", "run")
    assert store.add_error("p@1", "run") == 1


def test_a_connection_left_open_is_closed_with_the_adapter(mysql_dsn: str) -> None:
    store = MysqlRecordStore(mysql_dsn, max_connections=3)
    store.lookup_many(["x"])
    assert store.db.open_connections() >= 1
    store.close()
    assert store.db.open_connections() == 0


# -- unreadable rows ----------------------------------------------------------------------------------


def test_a_corrupt_record_row_raises_corrupt_record_on_lookup(
    store: MysqlRecordStore, mysql_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A foreign row (run_state 99) makes lookup/latest raise CorruptRecord; list leaves it out with a warning."""
    good, bad = dummy_record(foreign_id="good"), dummy_record(foreign_id="bad")
    store.store(good)
    store.store(bad)
    _query(mysql_dsn, "UPDATE workflow_records SET run_state = 99 WHERE run_id = %s", (bad.run_id,))

    with pytest.raises(af.CorruptRecord) as caught:
        store.lookup(bad.run_id)
    assert caught.value.run_id == bad.run_id
    with pytest.raises(af.CorruptRecord):
        store.latest(bad.workflow_name, "bad")
    with caplog.at_level(logging.WARNING, logger="actorflow.mysql"):
        assert [r.run_id for r in store.list(good.workflow_name)] == [good.run_id]
    assert "unreadable record" in caplog.text
    assert store.lookup_many([good.run_id, bad.run_id]) == {good.run_id: good}


def test_an_unreadable_record_is_reported_and_the_others_run(mysql_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    """The step consumer reports the unreadable runs and goes on with the runs behind it.

    A row that is no record (run state 42) is counted as a corrupt record and its event
    skipped; a row at a status outside the enum (99) is counted and paused with the reason.
    """
    streamer, store = MysqlEventStreamer(mysql_dsn), MysqlRecordStore(mysql_dsn)
    try:
        wf = two_steps("my-corrupt").build(streamer, store, MemoryRoleScheduler())
        labels = {"workflow_name": "my-corrupt", "process_name": "started-consumer-1-of-1"}

        def count(metric: str) -> float:
            return wf.metrics.registry.get_sample_value(metric, labels) or 0.0

        corrupt, malformed = count("actorflow_corrupt_records_total"), count("actorflow_malformed_events_total")
        bad, odd = wf.trigger("bad", Item("bad")), wf.trigger("odd", Item("odd"))
        _query(mysql_dsn, "UPDATE workflow_records SET run_state = 42 WHERE run_id = %s", (bad,))
        _query(mysql_dsn, "UPDATE workflow_records SET status = 99 WHERE run_id = %s", (odd,))
        good = wf.trigger("good", Item("good"))
        wf.run()
        try:
            assert wf.await_status("good", good, Stage.DONE, timeout=10).meta.version == 3
            eventually(lambda: count("actorflow_corrupt_records_total") == corrupt + 2, what="both runs counted")
        finally:
            wf.stop()
        assert count("actorflow_malformed_events_total") == malformed
        assert _query(mysql_dsn, "SELECT version, run_state FROM workflow_records WHERE run_id = %s", (bad,)) == [
            (1, 42)
        ]
        paused = store.lookup(odd)
        assert (paused.meta.version, paused.status, paused.run_state) == (2, 99, RunState.PAUSED)
        assert paused.meta.run_state_reason.startswith("stored run unreadable - automatically paused: ")
        assert f"run {bad} cannot be read, event skipped" in caplog.text
    finally:
        streamer.close()
        store.close()
