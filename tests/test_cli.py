"""The command line: run a node until SIGTERM, draw a diagram, the demo, the benchmark."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import actorflow as af

FLOW = """
import dataclasses, enum
import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

class Status(enum.IntEnum):
    ORDER_PLACED = 1
    PAID = 2
    SHIPPED = 3
    REFUNDED = 4

@dataclasses.dataclass
class Order:
    id: str = ""

b = af.Builder("cli-orders", Order, Status)
b.add_step(Status.ORDER_PLACED, lambda r: Status.PAID, Status.PAID)
b.add_step(Status.PAID, lambda r: Status.SHIPPED, Status.SHIPPED, Status.REFUNDED)
wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())

def make():
    return [wf]
"""


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOW)
    return tmp_path


def actorflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m actorflow ARGS`` in ``cwd`` (its temporary files there too), with no ACTORFLOW_*
    variable but those in ``env``: what the command does never depends on the shell it was run from.

    The one runner of the command-line tests (tests/test_cli_errors.py and the adapters' CLI tests too).
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, "TMPDIR": str(cwd), **(env or {})},
        check=False,
    )


def test_diagram_prints_mermaid(flow_dir: Path):
    result = actorflow("diagram", "flows:wf", cwd=flow_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("stateDiagram-v2\n\tdirection LR\n")
    assert "\tOrder_Placed: Order Placed" in out
    assert "\t[*] --> Order_Placed" in out
    assert "\tstate Paid_branching <<choice>>" in out
    assert "\tPaid_branching --> Refunded" in out
    assert "\tShipped --> [*]" in out


def test_a_bad_target_is_a_clear_error(flow_dir: Path):
    result = actorflow("diagram", "flows:nothing", cwd=flow_dir)
    assert result.returncode != 0
    assert "has no attribute 'nothing'" in result.stderr
    result = actorflow("diagram", "no_colon", cwd=flow_dir)
    assert "expected MODULE:ATTR" in result.stderr


def test_run_serves_until_sigterm_then_stops_cleanly(flow_dir: Path):
    """`actorflow run` runs a node (here from a factory) until SIGTERM and exits 0."""
    line, out, _ = run_until_sigterm(flow_dir, "flows:make", "--metrics-port", "0")
    assert "running cli-orders" in line
    assert "/metrics" in line
    assert "stopped" in out


def run_until_sigterm(cwd: Path, *args: str) -> tuple[str, str, str]:
    """`actorflow run ARGS` until its first line of output, then SIGTERM: (that line, the rest, stderr).

    Fails the test unless the node exits 0.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return line, out, err


def test_demo_runs_to_the_end(tmp_path: Path):
    """`actorflow demo` processes every run and prints a summary (runs from ACTORFLOW_RUNS)."""
    result = actorflow("demo", cwd=tmp_path, env={"ACTORFLOW_RUNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "200/200 orders shipped" in result.stdout
    assert "done: 200 runs, 800 transitions" in result.stdout
    assert "/metrics" in result.stdout


def test_bench_appends_its_figures(tmp_path: Path):
    out = tmp_path / "BENCH.md"
    result = actorflow("bench", "--runs", "300", "--latency-runs", "20", "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "transitions/s" in result.stdout
    text = out.read_text()
    assert "## " in text
    assert "transitions/s" in text
    assert "p50" in text


def test_bench_records_a_dsn_only_for_a_backend_that_uses_one(tmp_path: Path):
    """ACTORFLOW_DSN set in the environment is ignored by the memory backend, and its entry says no --dsn."""
    out = tmp_path / "BENCH.md"
    env = {"ACTORFLOW_DSN": "postgresql://nobody@127.0.0.1:1/none"}
    result = actorflow("bench", "--runs", "50", "--latency-runs", "3", "--output", str(out), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "command: `actorflow bench --backend memory --runs 50 --latency-runs 3`" in text, text


@pytest.mark.postgres
def test_bench_against_dbos_runs_both_engines_and_prints_the_ratios(tmp_path: Path, pg_dsn: str):
    """`actorflow bench --vs dbos` on a few runs: both engines on both loads, the table, the ratios, the file."""
    out = tmp_path / "BENCH.md"
    result = actorflow(
        "bench", "--vs", "dbos", "--dsn", pg_dsn, "--runs", "20", "--latency-runs", "3", "--parallel", "2",
        "--output", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for row in (
        "| dbos 3.4.0 | instant | 20 |",
        "| dbos 3.4.0 | io | 20 |",
        "| instant | 20 |",
        "| io | 20 |",
        "| async-io | 20 |",
    ):
        assert row in result.stdout, result.stdout
    assert "instant steps: actorflow/DBOS steps/s" in result.stdout
    assert "io steps: actorflow/DBOS steps/s" in result.stdout
    assert "async-io steps: actorflow/DBOS steps/s" in result.stdout
    text = out.read_text()
    assert "actorflow against DBOS Transact" in text
    assert pg_dsn not in text, "the DSN (which may hold a password) was written to the file"


def test_bench_against_dbos_needs_a_dsn(tmp_path: Path):
    """Without --dsn the comparison says what it needs instead of starting."""
    result = actorflow("bench", "--vs", "dbos", cwd=tmp_path)
    assert result.returncode == 2
    assert "--dsn" in result.stderr


# Runs the rest of the command line with SIGINT ignored: exec keeps an ignored signal ignored.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.parametrize("started_with", ["SIGINT handled", "SIGINT ignored"])
def test_demo_serve_keeps_the_metrics_up_until_interrupted(tmp_path: Path, started_with: str):
    """`actorflow demo --serve` finishes the runs, keeps /metrics up, and stops cleanly on Ctrl-C.

    Also when started with SIGINT ignored (a background job of a script; ``/usr/bin/time``
    does it to its child): Python then raises no KeyboardInterrupt, so the command
    handles the signal itself.
    """
    import re
    import urllib.request

    command = [sys.executable, "-m", "actorflow.cli", "demo", "--runs", "50", "--serve"]
    if started_with == "SIGINT ignored":
        command = [sys.executable, "-c", IGNORING_SIGINT, *command]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
            if found:
                port = int(found.group(1))
            if "serving metrics" in line:
                break
        assert port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'workflow_run_state_changes{current_run_state="Completed"' in text
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err


HANGING = """
import dataclasses, enum, threading
import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

class Status(enum.IntEnum):
    WAITING = 1
    DONE = 2

@dataclasses.dataclass
class Job:
    id: str = ""

never = threading.Event()

def hang(run):
    print(f"entered the step of {run.run_id}", flush=True)
    never.wait()  # a step that never returns
    return Status.DONE

b = af.Builder("hanging", Job, Status)
b.add_step(Status.WAITING, hang, Status.DONE)
wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())

def make():
    wf.trigger("job-1")
    return [wf]
"""


def test_run_exits_after_sigterm_within_its_stop_grace_even_when_a_step_never_returns(tmp_path: Path):
    """The hung step is abandoned after --stop-grace: the node exits 0 and the log names the run it left."""
    import re
    import time

    (tmp_path / "hanging.py").write_text(HANGING)
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "run", "hanging:make", "--stop-grace", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = None
        for line in proc.stdout:
            found = re.search(r"entered the step of (\S+)", line)
            if found:
                run_id = found.group(1)
                break
        assert run_id is not None
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert took < 10, f"the node took {took:.1f}s to exit with a 1s stop grace"
    assert f"abandoned while handling event 1 of run {run_id}" in err


# A node's app for the --roles tests: one workflow on a database's streamer and store.
_FLOW = """
import dataclasses, enum, os
import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
{imports}

class Status(enum.IntEnum):
    STARTED = 1
    DONE = 2

@dataclasses.dataclass
class Job:
    id: str = ""

{where}
b = af.Builder("fleet-cli", Job, Status)
b.add_step(Status.STARTED, lambda r: Status.DONE, Status.DONE)
wf = b.build({adapters}, MemoryRoleScheduler())
"""

SQLITE_FLOW = _FLOW.format(
    imports="from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore",
    where='path = os.environ["FLOW_DB"]',
    adapters="SqliteEventStreamer(path), SqliteRecordStore(path)",
)


@pytest.mark.parametrize("roles", ["own", "sqlite"])
def test_run_roles_flag_joins_the_fleet_of_the_workflows_database(tmp_path: Path, roles: str):
    """--roles sqlite claims through the file's lease table (the node joins, then leaves); without it, a warning."""
    import sqlite3

    (tmp_path / "fleetflow.py").write_text(SQLITE_FLOW)
    db = tmp_path / "fleet.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "run", "fleetflow:wf", "--roles", roles],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FLOW_DB": str(db)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "running fleet-cli" in line, line
        node_id = line.split("actorflow node ", 1)[1].split(" running", 1)[0]
        with sqlite3.connect(db) as conn:
            joined = [r[0] for r in conn.execute("SELECT node_id FROM workflow_nodes")]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    with sqlite3.connect(db) as conn:
        left = [r[0] for r in conn.execute("SELECT node_id FROM workflow_nodes")]
    if roles == "sqlite":
        assert joined == [node_id]
        assert left == [], "a node that stops leaves the fleet"
        assert "knows only this process" not in err
    else:
        assert joined == []
        assert "fleet-cli: its roles are claimed through MemoryRoleScheduler, which knows only this process" in err


def test_version_prints_the_installed_version(tmp_path: Path):
    result = actorflow("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"actorflow {af.__version__}"


LOGGING_FLOW = FLOW.replace(
    "def make():\n    return [wf]\n",
    "def make():\n"
    "    import logging\n"
    "    logging.getLogger('actorflow.example').warning('hello', extra={'run_id': 'r-1', 'workflow': 'cli-orders'})\n"
    "    return [wf]\n",
)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_run_logs_to_stderr_as_text_or_one_json_object_per_line(tmp_path: Path, log_format: str):
    """`actorflow run --log-format json`: each line a JSON object with the record's run context."""
    (tmp_path / "logging_flow.py").write_text(LOGGING_FLOW)
    first, _, err = run_until_sigterm(tmp_path, "logging_flow:make", "--log-format", log_format)
    assert "running cli-orders" in first
    (line,) = [line for line in err.splitlines() if "hello" in line]
    if log_format == "text":
        assert line.endswith("WARNING actorflow.example: hello")
        return
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "actorflow.example"
    assert entry["message"] == "hello"
    assert (entry["run_id"], entry["workflow"]) == ("r-1", "cli-orders")
    assert entry["time"].endswith("+00:00")
    assert all(json.loads(other) for other in err.splitlines() if other.strip())  # every line is JSON


def test_every_argument_of_every_command_has_help():
    """A new user reads ``--help``: no option or positional argument without a line saying what it is."""
    import argparse

    from actorflow.cli import _parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list of them
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help and action.dest != "help":
                missing.append(f"{path}: {action.dest}")

    walk(_parser(), "actorflow")
    assert missing == []


def test_demo_shows_progress_while_the_orders_are_still_being_placed(tmp_path: Path, monkeypatch, capsys):
    """With many runs, progress must not wait until every order is placed (it did: 37 s of silence)."""
    from actorflow import demo

    monkeypatch.setattr(demo, "_PROGRESS_EVERY", 0.0)  # a line after every order placed
    assert demo.run_demo(runs=30, path=str(tmp_path / "demo.db")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("metrics: http://127.0.0.1:")  # after the title and the database
    placing = [line for line in lines if "placed" in line]
    assert placing
    assert ", 1/30 placed" in placing[0]  # shown from the first order placed
    assert "30/30 orders shipped" in lines[-2]


# -- MySQL/MariaDB: db migrate, run --roles mysql, the demo and the benchmark, its exit statuses --

MYSQL_FLOW = _FLOW.format(
    imports="from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore",
    where='dsn = os.environ["FLOW_DSN"]',
    adapters="MysqlEventStreamer(dsn), MysqlRecordStore(dsn)",
)

# Never reachable: nothing listens on port 1. The password must never be shown.
MYSQL_DOWN_DSN = "mysql://nobody:s3cret@127.0.0.1:1/test"


def _one_error_line(result: subprocess.CompletedProcess[str], code: int, subcommand: str) -> str:
    """The one stderr line of a user error (exit status ``code``, no traceback, no password)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "s3cret" not in result.stderr
    (line,) = result.stderr.splitlines()
    prefix = f"actorflow {subcommand}: error: "
    assert line.startswith(prefix), line
    return line.removeprefix(prefix)


def _mysql_databases(server: str) -> set[str]:
    from tests.adapters.mysql.conftest import connect_admin

    conn = connect_admin(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


@pytest.mark.mysql
def test_db_migrate_on_mysql_applies_the_schema_then_nothing(tmp_path: Path, mysql_dsn: str):
    """`actorflow db migrate --dsn mysql://...` creates the tables in the DSN's database; run again, applies none."""
    from tests.adapters.mysql.conftest import connect_admin

    database = mysql_dsn.rsplit("/", 1)[1]
    first = actorflow("db", "migrate", "--dsn", mysql_dsn, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"MySQL database {database}: applied migrations 1\n"
    again = actorflow("db", "migrate", cwd=tmp_path, env={"ACTORFLOW_DSN": mysql_dsn})
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"MySQL database {database}: applied migrations none (already up to date)\n"
    conn = connect_admin(mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert {"workflow_records", "workflow_events", "workflow_leases", "workflow_nodes"} <= tables


@pytest.mark.mysql
@pytest.mark.parametrize("roles", ["own", "mysql"])
def test_run_roles_mysql_joins_the_fleet_of_the_workflows_database(tmp_path: Path, mysql_dsn: str, roles: str):
    """--roles mysql claims through the database's lease table (the node joins, then leaves); without it, a warning."""
    from actorflow.adapters.mysql import MysqlRoleScheduler

    (tmp_path / "mysqlflow.py").write_text(MYSQL_FLOW)
    fleet = MysqlRoleScheduler(mysql_dsn)
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "run", "mysqlflow:wf", "--roles", roles],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FLOW_DSN": mysql_dsn},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "running fleet-cli" in line, (line, proc.stderr.read() if proc.stderr else "")
        node_id = line.split("actorflow node ", 1)[1].split(" running", 1)[0]
        joined = [node.node_id for node in fleet.nodes()]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    try:
        assert proc.returncode == 0, err
        left = [node.node_id for node in fleet.nodes()]
    finally:
        fleet.close()
    if roles == "mysql":
        assert joined == [node_id]
        assert left == [], "a node that stops leaves the fleet"
        assert "knows only this process" not in err
    else:
        assert joined == []
        assert "fleet-cli: its roles are claimed through MemoryRoleScheduler, which knows only this process" in err


def test_run_roles_mysql_needs_a_mysql_record_store(flow_dir: Path):
    """--roles mysql on a workflow whose records are elsewhere: one line, exit status 3."""
    message = _one_error_line(actorflow("run", "flows:wf", "--roles", "mysql", cwd=flow_dir), 3, "run")
    assert "--roles mysql needs a MysqlRecordStore; 'cli-orders' keeps its records in" in message


@pytest.mark.mysql
def test_demo_and_bench_on_mysql_use_a_database_of_their_own_and_drop_it(tmp_path: Path, mysql_dsn: str):
    """`--backend mysql --dsn ...`: the demo ships every order and the benchmark measures, each in a fresh database."""
    server = mysql_dsn.rsplit("/", 1)[0] + "/test"
    before = _mysql_databases(server)
    demo = actorflow("demo", "--runs", "30", "--backend", "mysql", "--dsn", mysql_dsn, cwd=tmp_path, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "on the mysql backend" in demo.stdout
    assert "30/30 orders shipped" in demo.stdout
    made = re.search(r"\(database (actorflow_[0-9a-f]{10}), dropped at the end\)", demo.stdout)
    assert made is not None, demo.stdout
    out = tmp_path / "BENCH.md"
    bench = actorflow(
        "bench", "--backend", "mysql", "--runs", "100", "--latency-runs", "5", "--output", str(out),
        cwd=tmp_path, timeout=300, env={"ACTORFLOW_DSN": mysql_dsn},
    )  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    assert "backend=mysql" in bench.stdout
    assert "one MySQL/MariaDB database" in bench.stdout
    assert "transitions/s" in bench.stdout
    assert mysql_dsn not in out.read_text(), "the DSN (which may hold a password) was written to the file"
    # Other tests may make and drop databases on the server meanwhile: only ours are looked for.
    left = {name for name in _mysql_databases(server) - before if re.fullmatch(r"actorflow_[0-9a-f]{10}", name)}
    assert made.group(1) not in left
    assert not left, f"a database made for the demo or the benchmark was left behind: {left}"


def test_demo_on_mysql_without_a_dsn_is_a_usage_error(tmp_path: Path):
    message = _one_error_line(actorflow("demo", "--backend", "mysql", cwd=tmp_path), 2, "demo")
    assert "--backend mysql needs --dsn" in message


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        # A server error: nothing listens there (exit status 4).
        (["db", "migrate", "--dsn", MYSQL_DOWN_DSN], 4, "cannot connect to MySQL at 127.0.0.1:1"),
        (["demo", "--backend", "mysql", "--dsn", MYSQL_DOWN_DSN], 4, "cannot create the database"),
        (["runs", "list", "--dsn", MYSQL_DOWN_DSN], 4, "cannot connect to MySQL at 127.0.0.1:1"),
        # A DSN the adapter refuses before connecting (exit status 3).
        (["db", "migrate", "--dsn", "mysql://nobody:s3cret@127.0.0.1:1/"], 3, "must name the database"),
        (["db", "migrate", "--dsn", "mysql+pymysql://nobody:s3cret@127.0.0.1/db"], 3, "must start with mysql://"),
        (["runs", "list", "--dsn", "mysql://nobody:s3cret@127.0.0.1:1/db?ssl=1"], 3, "takes no options"),
        (["bench", "--backend", "mysql", "--dsn", "mysql://nobody:s3cret@:1/db"], 3, "must name the host"),
    ],
)
def test_mysql_errors_exit_4_and_a_bad_mysql_dsn_exits_3(tmp_path: Path, args: list[str], code: int, says: str):
    """A MySQL server away or failing is exit status 4, a DSN it cannot use 3: one line, the password hidden."""
    pytest.importorskip("pymysql")
    subcommand = " ".join(args[:2]) if args[0] in ("db", "runs") else args[0]
    assert says in _one_error_line(actorflow(*args, cwd=tmp_path), code, subcommand)


@pytest.mark.mysql
def test_a_mysql_server_error_exits_4(tmp_path: Path, mysql_server: str):
    """The server answers but refuses: an unknown database is a server error (4), its name in the one line."""
    dsn = mysql_server.rsplit("/", 1)[0] + "/actorflow_no_such_database"
    message = _one_error_line(actorflow("db", "migrate", "--dsn", dsn, cwd=tmp_path), 4, "db migrate")
    assert "actorflow_no_such_database" in message
