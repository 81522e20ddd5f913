"""``actorflow runs``: list, show and act on runs from the command line, with nothing but a DSN.

The commands run in this process (`actorflow.cli.main`) against a SQLite file that a
workflow built here writes to, as a node would; PostgreSQL gets the same through one
end-to-end case, and MySQL/MariaDB too. Each command prints its result and nothing else, and exits with the
documented status.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.cli import ExitCode, main
from tests.model import FAST, Order, Status

pytestmark = pytest.mark.timeout(60)

WORKFLOW = "cli-flow"


def _builder() -> af.Builder[Order, Status]:
    """STARTED --charge--> CHARGED --ship--> DONE, and a callback at AWAITING that approves."""
    b = af.Builder(WORKFLOW, Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.CHARGED, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.DONE, Status.DONE)
    b.add_callback(Status.AWAITING, _approve, Status.APPROVED)
    return b


def _approve(run: af.Run[Order, Status], payload: bytes) -> Status:
    run.object.notes.append(json.loads(payload)["note"])
    return Status.APPROVED


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def wf(db: Path, opened) -> af.Workflow[Order, Status]:
    """The workflow on ``db`` (SQLite records and events), not running."""
    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore

    adapters = [opened(SqliteEventStreamer(db)), opened(SqliteRecordStore(db)), opened(SqliteTimeoutStore(db))]
    return _builder().build(adapters[0], adapters[1], MemoryRoleScheduler(), timeout_store=adapters[2], defaults=FAST)


def runs(capsys: pytest.CaptureFixture[str], dsn: str, *args: str) -> tuple[int, str, str]:
    """``actorflow runs ARGS --dsn DSN``: the exit status, stdout and stderr."""
    command, *rest = args
    code = main(["runs", command, *rest, "--dsn", dsn])
    out, err = capsys.readouterr()
    return code, out, err


def _json(out: str) -> Any:
    return json.loads(out)


def test_list_prints_a_table_newest_first_and_pages_by_cursor(wf, db, capsys):
    ids = [wf.trigger(f"order-{i}", Order(id=f"order-{i}")) for i in range(7)]
    dsn = f"sqlite:///{db}"
    code, out, err = runs(capsys, dsn, "list", "--limit", "3")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "WORKFLOW",
        "FOREIGN",
        "ID",
        "STATUS",
        "RUN",
        "STATE",
        "VERSION",
        "UPDATED",
    ]
    assert [line.split()[0] for line in lines[1:4]] == ids[::-1][:3]
    assert lines[4].startswith("more: --after ")

    seen: list[str] = []
    after: str | None = None
    for _ in range(5):
        extra = ["--after", after] if after else []
        code, out, _ = runs(capsys, dsn, "list", "--limit", "3", "--json", *extra)
        page = _json(out)
        seen += [r["run_id"] for r in page["runs"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ids[::-1]
    first = _json(runs(capsys, dsn, "list", "--json", "--order", "asc", "--limit", "1")[1])["runs"][0]
    assert first["run_id"] == ids[0]
    assert (first["workflow"], first["foreign_id"], first["status_name"], first["run_state"], first["version"]) == (
        WORKFLOW,
        "order-0",
        "Started",
        "Initiated",
        1,
    )


def test_list_filters_by_status_run_state_foreign_id_prefix_and_time(wf, db, capsys):
    a = wf.trigger("eu-1", Order(id="eu-1"))
    wf.trigger("eu-2", Order(id="eu-2"))
    wf.trigger("us-1", Order(id="us-1"))
    wf.pause(a, "check")
    dsn = f"sqlite:///{db}"

    def listed(*flags: str) -> list[str]:
        code, out, err = runs(capsys, dsn, "list", "--json", *flags)
        assert (code, err) == (0, ""), err
        return sorted(r["foreign_id"] for r in _json(out)["runs"])

    assert listed("--foreign-id", "eu-") == ["eu-1", "eu-2"]
    assert listed("--run-state", "paused") == ["eu-1"]
    assert listed("--run-state", "Initiated", "--foreign-id", "eu") == ["eu-2"]
    assert listed("--status", "Started") == ["eu-1", "eu-2", "us-1"]
    assert listed("--status", str(int(Status.STARTED))) == ["eu-1", "eu-2", "us-1"]
    assert listed("--status", "Done") == []
    assert listed("--workflow", "another") == []
    assert listed("--since", "2000-01-01T00:00:00") == ["eu-1", "eu-2", "us-1"]
    assert listed("--until", "2000-01-01T00:00:00+00:00") == []
    code, out, _ = runs(capsys, dsn, "list", "--foreign-id", "nobody")
    assert (code, out) == (0, "no runs match\n")


def test_show_prints_the_object_and_every_version(wf, db, capsys):
    run_id = wf.trigger("show-1", Order(id="show-1", amount=42))
    wf.pause(run_id, "look at it")
    dsn = f"sqlite:///{db}"
    code, out, err = runs(capsys, dsn, "show", run_id)
    assert (code, err) == (0, "")
    assert f"run_id:      {run_id}" in out
    assert '"amount": 42' in out
    assert "look at it" in out
    assert "history:" in out
    shown = _json(runs(capsys, dsn, "show", run_id, "--json")[1])
    assert shown["object"] == {"id": "show-1", "amount": 42, "notes": []}
    assert [(v["version"], v["run_state"]) for v in shown["history"]] == [(1, "Initiated"), (2, "Paused")]
    assert shown["reason"] == "look at it"


def test_pause_and_resume_by_id_reach_a_running_node(wf, db, capsys):
    run_id = wf.trigger("p-1", Order(id="p-1"))
    dsn = f"sqlite:///{db}"
    code, out, err = runs(capsys, dsn, "pause", run_id, "--reason", "hold on")
    assert (code, err) == (0, "")
    assert out == f"paused {run_id} (version 2)\n"
    wf.run()
    try:
        code, out, err = runs(capsys, dsn, "resume", run_id)
        assert (code, out, err) == (0, f"resumed {run_id} (version 3)\n", "")
        done = wf.await_status("p-1", run_id, Status.DONE, timeout=15)
        assert done.run_state is af.RunState.COMPLETED
    finally:
        wf.stop()


def test_a_refused_or_unknown_run_is_reported_and_the_others_still_done(wf, db, capsys):
    paused = wf.trigger("r-1", Order(id="r-1"))
    stopped = wf.trigger("r-2", Order(id="r-2"))
    wf.pause(paused)
    wf.pause(stopped)
    wf.cancel(stopped)
    dsn = f"sqlite:///{db}"
    code, out, err = runs(capsys, dsn, "pause", stopped)
    assert code == ExitCode.REFUSED
    assert out == ""
    assert err == f"actorflow runs pause: refused: run {stopped}: invalid RunState: from Cancelled | to Paused\n"
    code, out, err = runs(capsys, dsn, "cancel", "missing-run", paused, "--json")
    assert code == ExitCode.NOT_FOUND
    results = _json(out)["results"]
    assert [(r["run_id"], r["result"]) for r in results] == [("missing-run", "not found"), (paused, "cancelled")]
    assert err == ""
    assert wf.record_store.lookup(stopped).meta.version == 3  # the refused run is untouched


def test_a_bulk_action_by_filter_touches_exactly_the_matching_runs(wf, db, capsys, monkeypatch):
    eu = [wf.trigger(f"eu-{i}", Order(id=f"eu-{i}")) for i in range(4)]
    us = wf.trigger("us-0", Order(id="us-0"))
    dsn = f"sqlite:///{db}"
    code, out, err = runs(capsys, dsn, "pause", "--all", "--foreign-id", "eu-", "--reason", "audit")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "4 of 4 matching runs paused"
    store = wf.record_store
    assert {store.lookup(run_id).run_state for run_id in eu} == {af.RunState.PAUSED}
    assert store.lookup(us).run_state is af.RunState.INITIATED
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: the bar is drawn there
    code, out, err = runs(capsys, dsn, "cancel", "--all", "--run-state", "paused", "--json")
    assert code == 0
    assert _json(out)["matched"] == 4
    assert err.endswith("] 4/4\n")
    assert {store.lookup(run_id).run_state for run_id in eu} == {af.RunState.CANCELLED}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["pause"], ExitCode.USAGE, "name the runs to pause"),
        (["pause", "some-run", "--all"], ExitCode.USAGE, "not both"),
        (["list", "--after", "nonsense"], ExitCode.CONFIG, "not a page cursor"),
        (["list", "--run-state", "sleeping"], ExitCode.CONFIG, "not a run state"),
        (["list", "--since", "yesterday"], ExitCode.CONFIG, "not an ISO 8601 time"),
        (["list", "--limit", "0"], ExitCode.CONFIG, "--limit must be at least 1"),
        (["show", "no-such-run"], ExitCode.NOT_FOUND, "no-such-run"),
    ],
)
def test_bad_usage_is_one_line_and_changes_nothing(wf, db, capsys, args, code, message):
    run_id = wf.trigger("u-1", Order(id="u-1"))
    got, out, err = runs(capsys, f"sqlite:///{db}", *args)
    assert got == code
    assert out == ""
    assert message in err
    assert len(err.splitlines()) == 1
    assert wf.record_store.lookup(run_id).meta.version == 1


@pytest.mark.parametrize(
    ("dsn", "code", "message"),
    [
        ("", ExitCode.USAGE, "--dsn (or ACTORFLOW_DSN) is required"),
        ("redis://root@localhost/0", ExitCode.CONFIG, "--dsn must be postgresql://..., mysql://..."),
        ("mysql://root@localhost/", ExitCode.CONFIG, "the MySQL DSN must name the database"),
        ("sqlite:///{tmp}/absent.db", ExitCode.CONFIG, "no SQLite database at"),
    ],
)
def test_a_missing_or_bad_dsn_is_one_line(tmp_path, capsys, dsn, code, message):
    got, out, err = runs(capsys, dsn.format(tmp=tmp_path), "list")
    assert (got, out) == (code, "")
    assert message in err
    assert not (tmp_path / "absent.db").exists()  # looking did not create it


CALLBACK_APP = """
import json
import os
import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore
from tests.test_cli_runs import _builder

path = os.environ["CLI_RUNS_DB"]
workflow = _builder().build(
    SqliteEventStreamer(path), SqliteRecordStore(path), MemoryRoleScheduler(), timeout_store=SqliteTimeoutStore(path)
)
"""


def test_callback_hands_a_payload_to_the_workflows_callback(wf, db, tmp_path, capsys, monkeypatch):
    module = f"cbapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(CALLBACK_APP)
    monkeypatch.setenv("CLI_RUNS_DB", str(db))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    run_id = wf.trigger("cb-1", Order(id="cb-1"), start_at=Status.AWAITING)
    app = f"{module}:workflow"
    try:
        code = main(["runs", "callback", "cb-1", "AWAITING", "--app", app, "--payload", '{"note": "ok"}'])
        out, err = capsys.readouterr()
        assert (code, err) == (0, "")
        assert out.startswith(f"called back 'cb-1' at AWAITING: run {run_id} now at Approved")
        assert wf.await_status("cb-1", run_id, Status.APPROVED, timeout=5).object.notes == ["ok"]

        code = main(["runs", "callback", "cb-1", "AWAITING", "--app", app, "--payload", "not json"])
        assert code == ExitCode.CONFIG
        assert "the payload is not JSON" in capsys.readouterr().err
        code = main(["runs", "callback", "nobody", "AWAITING", "--app", app, "--payload", "{}"])
        assert code == ExitCode.NOT_FOUND
        capsys.readouterr()
        code = main(["runs", "callback", "cb-1", "NO_SUCH", "--app", app, "--payload", "{}"])
        assert code == ExitCode.CONFIG
        assert "not a status of 'cli-flow'" in capsys.readouterr().err
    finally:
        loaded = sys.modules.pop(module, None)
        if loaded is not None:
            for adapter in (
                loaded.workflow.event_streamer,
                loaded.workflow.record_store,
                loaded.workflow.timeout_store,
            ):
                adapter.close()


@pytest.mark.postgres
def test_runs_on_postgres_list_show_and_resume_to_completion(pg_dsn, pg_schema, opened, capsys):
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore, PostgresTimeoutStore

    streamer = opened(PostgresEventStreamer(pg_dsn, schema=pg_schema))
    store = opened(PostgresRecordStore(pg_dsn, schema=pg_schema))
    timeouts = opened(PostgresTimeoutStore(pg_dsn, schema=pg_schema))
    wf = _builder().build(streamer, store, MemoryRoleScheduler(), timeout_store=timeouts, defaults=FAST)
    run_id = wf.trigger("pg-1", Order(id="pg-1"))

    def pg(*args: str) -> tuple[int, str, str]:
        return runs(capsys, pg_dsn, *args, "--schema", pg_schema)

    assert pg("pause", run_id)[0] == 0
    listed = _json(pg("list", "--json", "--run-state", "paused")[1])["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    wf.run()
    try:
        assert pg("resume", run_id)[:2] == (0, f"resumed {run_id} (version 3)\n")
        wf.await_status("pg-1", run_id, Status.DONE, timeout=15)
    finally:
        wf.stop()
    shown = _json(pg("show", run_id, "--json")[1])
    assert shown["run_state"] == "Completed"
    assert [v["run_state"] for v in shown["history"]][:3] == ["Initiated", "Paused", "Running"]


@pytest.mark.mysql
def test_runs_on_mysql_list_show_and_resume_to_completion(mysql_dsn, opened, capsys):
    """`actorflow runs` on a mysql:// DSN: pause, list, resume (the running node picks it up), show the history."""
    from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore, MysqlTimeoutStore

    streamer = opened(MysqlEventStreamer(mysql_dsn))
    store = opened(MysqlRecordStore(mysql_dsn))
    timeouts = opened(MysqlTimeoutStore(mysql_dsn))
    wf = _builder().build(streamer, store, MemoryRoleScheduler(), timeout_store=timeouts, defaults=FAST)
    run_id = wf.trigger("my-1", Order(id="my-1"))
    other = wf.trigger("my-2", Order(id="my-2"))

    def my(*args: str) -> tuple[int, str, str]:
        return runs(capsys, mysql_dsn, *args)

    assert my("pause", run_id, "--reason", "hold on") == (0, f"paused {run_id} (version 2)\n", "")
    listed = _json(my("list", "--json", "--run-state", "paused")[1])["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert sorted(r["run_id"] for r in _json(my("list", "--json", "--foreign-id", "my-")[1])["runs"]) == sorted(
        [other, run_id]
    )
    wf.run()
    try:
        assert my("resume", run_id)[:2] == (0, f"resumed {run_id} (version 3)\n")
        wf.await_status("my-1", run_id, Status.DONE, timeout=15)
    finally:
        wf.stop()
    shown = _json(my("show", run_id, "--json")[1])
    assert shown["run_state"] == "Completed"
    assert [v["run_state"] for v in shown["history"]][:3] == ["Initiated", "Paused", "Running"]
    code, out, err = my("cancel", run_id)
    assert code == ExitCode.REFUSED
    assert (out, err) == (
        "",
        f"actorflow runs cancel: refused: run {run_id}: invalid RunState: from Completed | to Cancelled\n",
    )


def test_a_run_at_a_status_outside_the_enum_is_listed_and_shown_with_its_number(wf, db, capsys):
    """A stored status no member of the enum names (a hand edit, a removed member) is shown as its number.

    Neither the table nor JSON nor ``show`` fails on it: that run is where an operator
    looks to mend or cancel it.
    """
    run_id = wf.trigger("odd-1", Order(id="odd-1"))
    record = wf.record_store.lookup(run_id)
    wf.record_store.store(wf.engine.transitions.next(record, run_state=af.RunState.RUNNING, status=77).record)
    dsn = f"sqlite:///{db}"
    code, out, err = runs(capsys, dsn, "list")
    assert (code, err) == (0, "")
    (line,) = [line for line in out.splitlines() if line.startswith(run_id)]
    assert " 77 " in line
    listed = _json(runs(capsys, dsn, "list", "--json")[1])
    assert [(r["run_id"], r["status"]) for r in listed["runs"]] == [(run_id, 77)]
    code, out, err = runs(capsys, dsn, "show", run_id)
    assert (code, err) == (0, "")
    assert "77" in out
    shown = _json(runs(capsys, dsn, "show", run_id, "--json")[1])
    assert [v["status"] for v in shown["history"]] == [int(Status.STARTED), 77]
    code, out, err = runs(capsys, dsn, "cancel", run_id)  # and it can be ended
    assert (code, err) == (0, "")
    assert wf.record_store.lookup(run_id).run_state is af.RunState.CANCELLED
