"""MySQL on the command line's named backends: `--backend mysql`, and Kafka with records in MySQL.

The commands themselves on a ``mysql://`` DSN (db migrate, run --roles mysql, runs, ui, demo,
bench, the exit statuses) are tested with the others, in tests/test_cli.py,
tests/test_cli_runs.py and tests/ui/test_ui_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorflow.backends import BACKENDS, make_backend
from tests.adapters.mysql.conftest import connect_admin
from tests.test_cli import actorflow


def _databases(dsn: str) -> set[str]:
    conn = connect_admin(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def test_mysql_is_a_named_backend_that_needs_a_dsn() -> None:
    """make_backend('mysql') without a DSN says which flag is missing; a DSN it cannot use is a ValueError."""
    pytest.importorskip("pymysql")
    assert "mysql" in BACKENDS
    with pytest.raises(ValueError, match="--dsn"):
        make_backend("mysql")
    with pytest.raises(ValueError, match="must name the database"):
        make_backend("mysql", dsn="mysql://root@127.0.0.1:1/")


@pytest.mark.mysql
def test_the_mysql_backend_keeps_everything_in_a_database_of_its_own_dropped_on_close(mysql_dsn: str) -> None:
    """The DSN's database is only connected to: the adapters work in a fresh one, which close() drops."""
    backend = make_backend("mysql", dsn=mysql_dsn)
    try:
        database = backend.location.split("(database ", 1)[1].split(",", 1)[0]
        assert database in _databases(mysql_dsn)
        assert backend.record_store.list("w") == []
        assert backend.record_store.db.identity[2] == database
        assert {a.db.identity for a in (backend.event_streamer, backend.timeout_store)} == {
            backend.record_store.db.identity
        }
    finally:
        backend.close()
    assert database not in _databases(mysql_dsn)
    conn = connect_admin(mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            assert cur.fetchall() == (), "tables were made in the DSN's own database"
    finally:
        conn.close()


@pytest.mark.kafka
@pytest.mark.mysql
def test_the_benchmark_runs_on_kafka_with_records_in_mysql(kafka_broker: str, mysql_dsn: str, tmp_path: Path) -> None:
    """`actorflow bench --backend kafka --dsn mysql://...`: events on Kafka, records in a MySQL database of its own."""
    result = actorflow(
        "bench", "--backend", "kafka", "--dsn", mysql_dsn, "--runs", "100", "--latency-runs", "5", "--output", "-",
        cwd=tmp_path, timeout=300, env={"ACTORFLOW_BOOTSTRAP_SERVERS": kafka_broker},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "backend=kafka" in result.stdout
    assert "records and timeouts in MySQL/MariaDB" in result.stdout
    assert "transitions/s" in result.stdout
