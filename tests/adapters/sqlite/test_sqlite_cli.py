"""SQLite on the command line: the demo's default backend, --path, and the benchmark."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from actorflow.adapters.sqlite import SqliteRecordStore
from actorflow.backends import BACKENDS, make_backend
from tests.test_cli import actorflow


def test_sqlite_is_a_named_backend():
    assert "sqlite" in BACKENDS


def test_a_backend_without_a_path_uses_a_temporary_file_removed_on_close(tmp_path, monkeypatch):
    """make_backend('sqlite') makes a fresh file in a temporary directory; close() removes it."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    backend = make_backend("sqlite")
    assert isinstance(backend.record_store, SqliteRecordStore)
    backend.record_store.list("w")
    assert Path(backend.location).exists()
    backend.close()
    assert not Path(backend.location).parent.exists()


def test_the_demo_runs_on_sqlite_by_default_and_leaves_nothing_behind(tmp_path):
    """`actorflow demo` stores its runs in a temporary SQLite file, removed at the end."""
    result = actorflow("demo", "--runs", "50", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "on the sqlite backend" in result.stdout
    assert "50/50 orders shipped" in result.stdout
    assert not list(tmp_path.glob("actorflow-*"))


def test_the_demo_keeps_its_database_at_the_given_path(tmp_path):
    """`actorflow demo --path FILE` leaves every run in FILE, completed at version 5 (four steps)."""
    path = tmp_path / "demo.db"
    result = actorflow("demo", "--runs", "30", "--path", str(path), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout
    with sqlite3.connect(path) as conn:
        counts = conn.execute("SELECT count(*), min(version), max(version) FROM workflow_records").fetchone()
    assert counts == (30, 5, 5)


def test_the_benchmark_runs_on_sqlite(tmp_path):
    """`actorflow bench --backend sqlite` measures throughput and latency."""
    result = actorflow(
        "bench",
        "--backend",
        "sqlite",
        "--runs",
        "200",
        "--latency-runs",
        "10",
        "--output",
        "-",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "backend=sqlite" in result.stdout
    assert "transitions/s" in result.stdout
    assert "p50" in result.stdout
