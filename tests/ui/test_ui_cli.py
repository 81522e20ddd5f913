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
