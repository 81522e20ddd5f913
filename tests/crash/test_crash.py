"""Crash and restart: a node killed with SIGKILL mid-way through 1,000 runs loses and repeats no transition.

Once per durable backend (SQLite, PostgreSQL, MySQL/MariaDB), not over every stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorflow import RunState
from tests.child_nodes import kill_part_way

NODE = Path(__file__).with_name("crash_node.py")
RUNS = 1000


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[str], Callable[[], Any]]]:
    """The node's command-line arguments and a factory of the record store it writes to."""
    if request.param == "sqlite":
        from actorflow.adapters.sqlite import SqliteRecordStore

        path = str(tmp_path / "crash.db")
        args, make = ["sqlite", path, str(RUNS)], lambda: SqliteRecordStore(path)
    elif request.param == "mysql":
        from actorflow.adapters.mysql import MysqlRecordStore

        dsn = request.getfixturevalue("mysql_dsn")
        args, make = ["mysql", dsn, str(RUNS)], lambda: MysqlRecordStore(dsn)
    else:
        from actorflow.adapters.postgres import PostgresRecordStore

        dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
        args, make = ["postgres", dsn, schema, str(RUNS)], lambda: PostgresRecordStore(dsn, schema=schema)
    yield args, make


def _node(args: list[str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(NODE), *args, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("steps", ["instant", "io", "async"])
def test_a_node_killed_mid_way_finishes_every_run_after_a_restart(backend, steps):
    """SIGKILL after a few hundred of 1,000 runs completed; a restarted node completes all, each at version 4.

    Three steps store versions 2, 3 and 4: a run at version 4 with exactly four snapshots
    had each transition stored exactly once, whatever the crash interrupted. With "io"
    steps (each waits 5 ms) the shards run many steps at once, so the kill lands with a
    window of them in hand; "async" steps await it on the engine's loop, many at once too.
    """
    from tests.crash.crash_node import completed

    args, make_store = backend
    extra = {"io": ["--io"], "async": ["--async"]}.get(steps, [])
    store = make_store()
    try:
        first = _node(args, "--trigger", *extra)
        kill_part_way(first, lambda: _safe_completed(completed, store), 300)
        assert completed(store, RUNS) < RUNS, "the node finished before it was killed: the test proves nothing"

        second = _node(args, *extra)
        try:
            _, err = second.communicate(timeout=120)
        finally:
            second.kill()
        assert second.returncode == 0, err

        records = store.list("crash", limit=RUNS + 1)
        assert len(records) == RUNS
        assert {(r.status, int(r.run_state), r.meta.version) for r in records} == {(4, 5, 4)}
        # The object counts the steps that were stored: three, never a step stored twice.
        assert {json.loads(r.object)["steps"] for r in records} == {3}
        for record in records:
            assert [s.meta.version for s in store.snapshots(record.run_id)] == [1, 2, 3, 4]
    finally:
        store.close()


def _safe_completed(completed: Callable[[Any, int], int], store: Any) -> int:
    """Completed runs so far; 0 while the node has not created its tables yet."""
    try:
        return completed(store, RUNS)
    except Exception:
        return 0


def _crash_until_done(args: list[str], *extra: str) -> int:
    """Start the node (triggering its runs) and restart it after each crash until it exits cleanly.

    Returns how many times it crashed.
    """
    crashes = 0
    node = _node(args, "--trigger", *extra)
    while True:
        _, err = node.communicate(timeout=120)
        if node.returncode != 3:
            break
        crashes += 1
        assert crashes <= 6, "the poisoned run was never paused"
        node = _node(args, *extra)
    assert node.returncode == 0, err
    return crashes


def _check_only_the_poisoned_run_paused(store: Any, runs: int, poisoned: str) -> None:
    """The poisoned run paused at the limit; every other run completed with no error counted (no pause stored)."""
    from tests.crash.crash_node import completed

    assert completed(store, runs) == runs
    records = {r.foreign_id: r for r in store.list("crash", limit=runs + 1)}
    assert records[poisoned].run_state is RunState.PAUSED
    assert records[poisoned].meta.run_state_reason == "max error retry threshold hit - automatically paused"
    others = [r for fid, r in records.items() if fid != poisoned]
    assert {(int(r.run_state), r.meta.version) for r in others} == {(5, 4)}
    for record in others:
        assert [s.meta.version for s in store.snapshots(record.run_id)] == [1, 2, 3, 4]


def test_a_run_that_kills_its_node_is_paused_at_the_limit(backend):
    """A step that takes the whole process down raises nothing to count; the in-flight note
    lets each restarted node find it, and once it crashed the limit's number of times alone
    it is paused, not run.

    It first crashes in a batch of 60 runs: that crash is nobody's for sure, so it counts
    against none of them; the next node runs those runs one at a time, and from then on
    the run dies alone and each crash counts. So it runs once more than
    ``pause_after_err_count`` (3): four crashes.
    """
    assert _poison(backend, 60) == 4


def test_a_run_that_kills_its_node_does_not_pause_its_batch_neighbours(backend):
    """One SIGKILL mid-batch with pause_after_err_count=1 pauses the run that did it, not its batch.

    The first node dies with the 20 runs of its first batch in its in-flight note; the
    next one meets them one at a time, and dies again with the killer alone in its note;
    the third pauses the killer. Its neighbours complete with no error counted.
    """
    assert _poison(backend, 20, "--pause-after", "1") == 2


def _poison(backend: Any, runs: int, *extra: str) -> int:
    """Crash nodes on ``runs`` runs until done, "run-7" killing each node that runs it; the crashes.

    Checks that "run-7" alone ends paused and every other run completed.
    """
    args, make_store = backend
    crashes = _crash_until_done([*args[:-1], str(runs)], "--poison", "run-7", *extra)
    store = make_store()
    try:
        _check_only_the_poisoned_run_paused(store, runs, "run-7")
    finally:
        store.close()
    return crashes
