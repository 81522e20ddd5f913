"""``actorflow ui``'s refusals: one line, the documented exit status, nothing served."""

from __future__ import annotations

import pytest

from actorflow.cli import ExitCode, main

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--dsn", "sqlite:///{tmp}/ui.db", "--host", "0.0.0.0"], ExitCode.CONFIG, "give --token"),  # noqa: S104
        (["--dsn", "sqlite:///{tmp}/absent.db"], ExitCode.CONFIG, "no SQLite database at"),
        ([], ExitCode.USAGE, "--dsn (or ACTORFLOW_DSN) is required"),
        (["--dsn", "sqlite:///{tmp}/ui.db", "--app", "no_such_module:wf"], ExitCode.CONFIG, "cannot import"),
    ],
)
def test_ui_refuses_bad_options_in_one_line(tmp_path, capsys, args, code, message):
    (tmp_path / "ui.db").touch()
    got = main(["ui", *(arg.format(tmp=tmp_path) for arg in args), "--port", "0"])
    out, err = capsys.readouterr()
    assert (got, out) == (code, "")
    assert message in err
    assert len(err.splitlines()) == 1


def test_ui_on_a_port_in_use_is_a_clear_error(tmp_path, capsys, opened):
    from actorflow.adapters.sqlite import SqliteRecordStore
    from actorflow.ui import bind

    opened(SqliteRecordStore(tmp_path / "ui.db")).list("")  # a real, empty database
    taken = bind("127.0.0.1", 0)
    try:
        got = main(["ui", "--dsn", f"sqlite:///{tmp_path}/ui.db", "--port", str(taken.getsockname()[1])])
    finally:
        taken.close()
    assert got == ExitCode.CONFIG
    assert "cannot serve the UI" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dsn", "code", "message"),
    [
        ("mysql://nobody:s3cret@127.0.0.1:1/test", ExitCode.BACKEND, "cannot connect to MySQL at 127.0.0.1:1"),
        ("mysql://nobody:s3cret@127.0.0.1:1/", ExitCode.CONFIG, "the MySQL DSN must name the database"),
    ],
)
def test_ui_on_a_mysql_server_away_or_a_bad_mysql_dsn(capsys, dsn, code, message):
    """A MySQL server away is exit status 4, a DSN the adapter refuses 3: one line, no password, nothing served."""
    pytest.importorskip("pymysql")
    got = main(["ui", "--dsn", dsn, "--port", "0"])
    out, err = capsys.readouterr()
    assert (got, out) == (code, "")
    assert message in err
    assert "s3cret" not in err
    assert len(err.splitlines()) == 1


@pytest.mark.mysql
def test_ui_serves_the_runs_and_the_fleet_of_a_mysql_database(mysql_dsn, opened):
    """`actorflow ui --dsn mysql://...` in a child process: the runs list, a run's page, the fleet's nodes; SIGTERM stops it."""
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from actorflow.adapters.memory import MemoryRoleScheduler
    from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore, MysqlRoleScheduler
    from tests.model import Item, three_steps

    wf = three_steps("ui-mysql").build(
        opened(MysqlEventStreamer(mysql_dsn)), opened(MysqlRecordStore(mysql_dsn)), MemoryRoleScheduler()
    )
    run_id = wf.trigger("shown-1", Item(id="shown-1"))
    fleet = opened(MysqlRoleScheduler(mysql_dsn))
    fleet.join("node-on-mysql", [])
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "ui", "--dsn", mysql_dsn, "--port", "0", "--read-only"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("actorflow ui on http://127.0.0.1:"), line + (proc.stderr.read() if proc.stderr else "")
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])

        def page(path: str) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200
                return str(resp.read().decode())

        assert run_id in page("/")
        assert "shown-1" in page(f"/runs/{run_id}")
        assert "node-on-mysql" in page("/nodes")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
