"""Crash and restart: a node killed with SIGKILL mid-way through 1,000 runs loses and repeats no transition."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

NODE = Path(__file__).with_name("crash_node.py")
RUNS = 1000


def _completed(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM records WHERE run_state = 5").fetchone()[0]
    except sqlite3.OperationalError:  # the node has not created the tables yet
        return 0


def _node(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(NODE), str(path), str(RUNS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_node_killed_mid_way_finishes_every_run_after_a_restart(tmp_path):
    """SIGKILL after a few hundred of 1,000 runs completed; a restarted node completes all, each at version 4.

    Three steps store versions 2, 3 and 4: a run at version 4 with exactly four snapshots
    had each transition stored exactly once, whatever the crash interrupted.
    """
    path = tmp_path / "crash.db"
    first = _node(path, "--trigger")
    try:
        deadline = time.monotonic() + 60
        while (done := _completed(path)) < 300:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, f"only {done} runs completed in 60 s"
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
        first.communicate()
    at_kill = _completed(path)
    assert at_kill < RUNS, "the node finished before it was killed: the test proves nothing"

    second = _node(path)
    try:
        _, err = second.communicate(timeout=120)
    finally:
        second.kill()
    assert second.returncode == 0, err

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*), min(version), max(version) FROM records").fetchone() == (RUNS, 4, 4)
        assert conn.execute("SELECT count(*) FROM records WHERE run_state = 5 AND status = 4").fetchone() == (RUNS,)
        per_run = conn.execute(
            "SELECT count(*), group_concat(version) FROM"
            " (SELECT run_id, version FROM snapshots ORDER BY run_id, version) GROUP BY run_id"
        ).fetchall()
        assert len(per_run) == RUNS
        assert set(per_run) == {(4, "1,2,3,4")}
        # The object counts the steps that were stored: three, never a step stored twice.
        assert conn.execute("SELECT DISTINCT CAST(object AS TEXT) FROM records").fetchall() == [('{"steps":3}',)]
