"""The command line's user errors: one line on stderr, no traceback, a distinct exit status each (issue 14)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from actorflow.cli import ExitCode
from tests.test_cli import FLOW, actorflow

# Never reachable: nothing listens on port 1. The password must never be shown.
DOWN_DSN = "postgresql://nobody:s3cret@127.0.0.1:1/test"

DOWN_FLOW = f"""
import dataclasses, enum
import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore

class Status(enum.IntEnum):
    STARTED = 1
    DONE = 2

@dataclasses.dataclass
class Job:
    id: str = ""

b = af.Builder("down", Job, Status)
b.add_step(Status.STARTED, lambda r: Status.DONE, Status.DONE)
wf = b.build(PostgresEventStreamer({DOWN_DSN!r}), PostgresRecordStore({DOWN_DSN!r}), MemoryRoleScheduler())
"""

FACTORIES = """
from flows import wf

def needs_an_argument(name, *, size=1):
    return [wf]

def broken():
    raise RuntimeError("a bug in the factory")
"""


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOW)
    (tmp_path / "factories.py").write_text(FACTORIES)
    (tmp_path / "downflow.py").write_text(DOWN_FLOW)
    return tmp_path


def one_line_error(result: subprocess.CompletedProcess[str], code: ExitCode, subcommand: str) -> str:
    """The one stderr line of a user error, after checking the exit status and the absence of a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"actorflow {subcommand}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix)


def test_the_exit_codes_are_distinct_and_in_the_help(flow_dir: Path):
    codes = [c.value for c in ExitCode]
    assert len(codes) == len(set(codes))
    result = actorflow("--help", cwd=flow_dir)
    assert result.returncode == 0
    for code in ExitCode:
        assert re.search(rf"^  {code.value} ", result.stdout, re.MULTILINE), (code, result.stdout)


def test_demo_on_postgres_without_a_dsn(flow_dir: Path):
    message = one_line_error(actorflow("demo", "--backend", "postgres", cwd=flow_dir), ExitCode.USAGE, "demo")
    assert "--backend postgres needs --dsn" in message


def test_demo_on_an_unreachable_postgres_hides_the_password(flow_dir: Path):
    pytest.importorskip("psycopg")
    result = actorflow("demo", "--backend", "postgres", "--dsn", DOWN_DSN, cwd=flow_dir)
    message = one_line_error(result, ExitCode.BACKEND, "demo")
    assert "cannot connect to PostgreSQL" in message
    assert "s3cret" not in result.stderr
    assert "nobody:***@127.0.0.1:1" in message


def test_demo_with_a_dsn_that_does_not_parse(flow_dir: Path):
    pytest.importorskip("psycopg")
    result = actorflow("demo", "--backend", "postgres", cwd=flow_dir, env={"ACTORFLOW_DSN": "nosuchoption=1"})
    message = one_line_error(result, ExitCode.CONFIG, "demo")
    assert "invalid PostgreSQL DSN" in message


def test_demo_on_an_unreachable_kafka(flow_dir: Path):
    pytest.importorskip("kafka")
    result = actorflow("demo", "--backend", "kafka", "--bootstrap-servers", "127.0.0.1:1", "--runs", "5", cwd=flow_dir)
    message = one_line_error(result, ExitCode.BACKEND, "demo")
    assert "127.0.0.1:1" in message


@pytest.mark.parametrize(("schema", "says"), [("pg_catalog", "reserved"), ("a b", "plain identifier")])
def test_db_migrate_refuses_a_bad_schema_before_connecting(flow_dir: Path, schema: str, says: str):
    pytest.importorskip("psycopg")
    result = actorflow("db", "migrate", "--dsn", DOWN_DSN, "--schema", schema, cwd=flow_dir)
    message = one_line_error(result, ExitCode.CONFIG, "db migrate")
    assert says in message
    assert repr(schema) in message
    assert "s3cret" not in result.stderr


def test_db_migrate_without_a_dsn(flow_dir: Path):
    message = one_line_error(actorflow("db", "migrate", cwd=flow_dir), ExitCode.USAGE, "db migrate")
    assert "--dsn" in message


def test_run_with_the_database_down(flow_dir: Path):
    """The supervisor cannot start: one line naming the server (no password), status 4, and quickly."""
    pytest.importorskip("psycopg")
    result = actorflow("run", "downflow:wf", "--roles", "postgres", cwd=flow_dir)
    message = one_line_error(result, ExitCode.BACKEND, "run")
    assert "cannot connect to PostgreSQL at '127.0.0.1'" in message
    assert "s3cret" not in result.stderr


def test_diagram_of_a_factory_that_needs_an_argument(flow_dir: Path):
    result = actorflow("diagram", "factories:needs_an_argument", cwd=flow_dir)
    message = one_line_error(result, ExitCode.CONFIG, "diagram")
    assert "factories:needs_an_argument is a factory that needs arguments (name)" in message


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("flows", "expected MODULE:ATTR"),
        ("nosuchmodule:wf", "cannot import 'nosuchmodule'"),
        ("flows:nothing", "has no attribute 'nothing'"),
        ("flows:Order", "is not a Workflow"),
    ],
)
def test_diagram_of_a_bad_target(flow_dir: Path, target: str, says: str):
    assert says in one_line_error(actorflow("diagram", target, cwd=flow_dir), ExitCode.CONFIG, "diagram")


def test_a_bug_is_not_hidden(flow_dir: Path):
    """An error that is not a user's (here: the factory's own) keeps its traceback and Python's status 1."""
    result = actorflow("diagram", "factories:broken", cwd=flow_dir)
    assert result.returncode == ExitCode.INTERNAL
    assert "Traceback" in result.stderr
    assert "RuntimeError: a bug in the factory" in result.stderr


@pytest.mark.parametrize("how", ["--debug", "ACTORFLOW_DEBUG=1"])
def test_debug_adds_the_traceback(flow_dir: Path, how: str):
    args, env = (["--debug"], {}) if how == "--debug" else ([], {"ACTORFLOW_DEBUG": "1"})
    result = actorflow("diagram", "factories:needs_an_argument", *args, cwd=flow_dir, env=env)
    assert result.returncode == ExitCode.CONFIG
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("actorflow diagram: error: ")


def test_a_bad_variable_breaks_only_the_subcommands_that_use_it(flow_dir: Path):
    bad = {"ACTORFLOW_RUNS": "abc"}
    for args in (["--help"], ["demo", "--help"], ["bench", "--help"], ["run", "--help"]):
        result = actorflow(*args, cwd=flow_dir, env=bad)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.startswith("usage: actorflow"), result.stdout
    diagram = actorflow("diagram", "flows:wf", cwd=flow_dir, env=bad)
    assert diagram.returncode == 0, diagram.stderr
    for subcommand in ("demo", "bench"):
        message = one_line_error(actorflow(subcommand, cwd=flow_dir, env=bad), ExitCode.CONFIG, subcommand)
        assert "ACTORFLOW_RUNS='abc'" in message
        assert "int" in message


def test_the_flag_wins_over_a_bad_variable(flow_dir: Path):
    result = actorflow("demo", "--runs", "20", cwd=flow_dir, env={"ACTORFLOW_RUNS": "abc"})
    assert result.returncode == 0, result.stderr
    assert "20/20 orders shipped" in result.stdout


def test_a_variable_outside_its_choices(flow_dir: Path):
    result = actorflow("demo", cwd=flow_dir, env={"ACTORFLOW_BACKEND": "nosuch"})
    message = one_line_error(result, ExitCode.CONFIG, "demo")
    assert "ACTORFLOW_BACKEND='nosuch': not one of memory, sqlite, postgres, kafka" in message


def test_a_bad_flag_is_argparse_usage_error(flow_dir: Path):
    result = actorflow("demo", "--runs", "abc", cwd=flow_dir)
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr
    assert "invalid int value: 'abc'" in result.stderr


@pytest.mark.parametrize(
    ("option", "bound", "other"),
    [
        # --metrics-host binds the endpoint there (another loopback address than the default).
        (["--metrics-host", "127.0.0.2"], "127.0.0.2", "127.0.0.1"),
        # Without it (or its variable) on 127.0.0.1: not 0.0.0.0, which would answer anywhere.
        ([], "127.0.0.1", "127.0.0.2"),
    ],
    ids=["given", "default"],
)
def test_run_serves_metrics_on_the_metrics_host_only(flow_dir: Path, option: list[str], bound: str, other: str):
    """The metrics endpoint answers on its host and nowhere else."""
    env = {k: v for k, v in os.environ.items() if k != "ACTORFLOW_METRICS_HOST"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow", "run", "flows:make", *option, "--metrics-port", "0"],
        cwd=flow_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(rf"metrics on http://{re.escape(bound)}:(\d+)/metrics", line)
        assert found, line
        port = int(found.group(1))
        with urllib.request.urlopen(f"http://{bound}:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://{other}:{port}/metrics", timeout=5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_run_on_a_metrics_host_it_cannot_bind(flow_dir: Path):
    # 192.0.2.1 (TEST-NET-1, documentation only) is no address of this machine.
    result = actorflow("run", "flows:make", "--metrics-host", "192.0.2.1", "--metrics-port", "0", cwd=flow_dir)
    message = one_line_error(result, ExitCode.CONFIG, "run")
    assert "cannot serve metrics on --metrics-host 192.0.2.1" in message


@pytest.mark.postgres
def test_the_demo_on_postgresql_never_prints_the_password(tmp_path: Path, pg_dsn: str) -> None:
    """The demo names the database it uses, with the DSN's password hidden (the server here trusts any)."""
    with_password = pg_dsn.replace("postgresql://postgres@", "postgresql://postgres:s3cret@", 1)
    assert "s3cret" in with_password, pg_dsn
    result = actorflow("demo", "--backend", "postgres", "--dsn", with_password, "--runs", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "postgres:***@" in result.stdout
