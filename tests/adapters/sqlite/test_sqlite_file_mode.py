"""The permissions of the SQLite file: a new database is its owner's only, unless told otherwise."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

import actorflow as af
from actorflow.adapters.sqlite import (
    SqliteEventStreamer,
    SqliteRecordStore,
    SqliteRoleScheduler,
    SqliteTimeoutStore,
    migrate,
)
from actorflow.testing.adaptertest._records import dummy_record

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")

ADAPTERS = [SqliteRecordStore, SqliteTimeoutStore, SqliteEventStreamer, SqliteRoleScheduler]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask():
    """The usual umask (022), under which SQLite alone creates a file 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_database_and_its_wal_are_created_0600(tmp_path):
    """A file the adapters create is 0600, and so are the -wal and -shm files SQLite adds after a write."""
    path = tmp_path / "new.db"
    with SqliteRecordStore(path) as store:
        store.store(dummy_record())
        assert _mode(path) == 0o600
        for suffix in ("-wal", "-shm"):
            side = tmp_path / f"new.db{suffix}"
            assert side.exists()
            assert _mode(side) == 0o600


@pytest.mark.parametrize("cls", ADAPTERS, ids=lambda cls: cls.__name__)
def test_every_adapter_creates_the_file_0600(tmp_path, cls):
    """Whichever adapter opens a new file first, it is created 0600; migrate() too."""
    path = tmp_path / "new.db"
    with cls(path) as adapter:
        adapter.db.connection()
    assert _mode(path) == 0o600
    other = tmp_path / "migrated.db"
    migrate(other)
    assert _mode(other) == 0o600


def test_an_existing_files_mode_is_left_alone(tmp_path):
    """A database that exists (here 0644, made by SQLite itself) keeps its permissions, whatever file_mode says."""
    path = tmp_path / "old.db"
    with SqliteRecordStore(path, file_mode=None) as store:
        store.store(dummy_record())
    assert _mode(path) == 0o644
    with SqliteRecordStore(path, file_mode=0o600) as store:
        store.store(dummy_record(foreign_id="f-2"))
    assert _mode(path) == 0o644


def test_file_mode_is_respected(tmp_path):
    """file_mode=0o640 creates the file 0640 exactly (whatever the umask); None leaves it to SQLite."""
    os.umask(0o077)
    path = tmp_path / "group.db"
    with SqliteRecordStore(path, file_mode=0o640) as store:
        store.store(dummy_record())
        assert _mode(path) == 0o640
        assert _mode(tmp_path / "group.db-wal") == 0o640
    os.umask(0o022)
    default = tmp_path / "sqlite.db"
    with SqliteEventStreamer(default, file_mode=None) as streamer:
        streamer.db.connection()
    assert _mode(default) == 0o644


@pytest.mark.parametrize("file_mode", [-1, 0o1777, True, "600"], ids=repr)
def test_a_file_mode_that_is_not_permission_bits_is_refused(tmp_path, file_mode):
    """file_mode must be permission bits (0o000-0o777) or None: ValueError before any file is made."""
    with pytest.raises(ValueError, match="file_mode"):
        SqliteRecordStore(tmp_path / "x.db", file_mode=file_mode)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda path: SqliteEventStreamer(path, retention=timedelta(seconds=-1)), "retention"),
        (lambda path: SqliteEventStreamer(path, retention=0), "retention"),
        (lambda path: SqliteRoleScheduler(path, ttl=timedelta(seconds=-3)), "ttl"),  # type: ignore[arg-type]
        (lambda path: SqliteRecordStore(path, busy_timeout=-1.0), "busy_timeout"),
    ],
    ids=["negative-retention", "zero-retention", "negative-ttl", "negative-busy-timeout"],
)
def test_an_adapter_duration_out_of_range_is_refused(tmp_path, make, name):
    """The SQLite adapters' durations get the options' check: BuildError (a ValueError) naming the argument."""
    with pytest.raises(af.BuildError, match=name):
        make(tmp_path / "x.db")
