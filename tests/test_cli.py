"""The command line: run a node until SIGTERM, draw a diagram, the demo, the benchmark."""

from __future__ import annotations

import json
import os
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


SQLITE_FLOW = """
import dataclasses, enum, os
import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore

class Status(enum.IntEnum):
    STARTED = 1
    DONE = 2

@dataclasses.dataclass
class Job:
    id: str = ""

path = os.environ["FLOW_DB"]
b = af.Builder("fleet-cli", Job, Status)
b.add_step(Status.STARTED, lambda r: Status.DONE, Status.DONE)
wf = b.build(SqliteEventStreamer(path), SqliteRecordStore(path), MemoryRoleScheduler())
"""


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
