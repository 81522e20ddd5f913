"""Fleets of real node processes on one database: the work is shared, never done twice, and moves on failure.

Each node is a child process (``fleet_node.py``) claiming roles through the database's
lease table; the test triggers runs from its own process (a trigger-only instance of
the workflow, never hosted), samples which node works which role through each node's
/healthz, and checks the result in the database and in the nodes' step logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from tests.adapters.mysql._mysql_server import throwaway_server
from tests.adapters.postgres._pg_cluster import throwaway_cluster
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually

NODE = Path(__file__).with_name("fleet_node.py")
RUNS = 2000  # the load for three nodes sharing the work
LOAD = 1000  # the load a node fails under (enough to be mid-load when it goes)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class Node:
    """One node process, started; its /healthz port and node id once it said it is ready."""

    def __init__(self, args: list[str], log: Path, step_seconds: float = 0.0, in_flight: int = 0) -> None:
        self.log = log
        env = {**os.environ, "FLEET_STEP_SECONDS": str(step_seconds)}
        if in_flight:
            env["FLEET_MAX_IN_FLIGHT"] = str(in_flight)
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE), *args, str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.port, self.node_id = 0, ""

    def wait_ready(self) -> Node:
        """Block until the node says it is ready (nodes launched together start up in parallel)."""
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        assert ready[:1] == ["ready"], (ready, self.proc.communicate(timeout=10))
        self.port, self.node_id = int(ready[1]), ready[2]
        return self

    def running(self) -> set[str]:
        """The processes this node works now (from its /healthz)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        except OSError:
            return set()  # stopped or killed
        return {key for key, state in body["processes"].items() if state == "Running"}

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Signal the node and reap it; its exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err

    def steps(self) -> list[tuple[str, int]]:
        """The steps this node ran: (run id, status)."""
        lines = self.log.read_text(encoding="utf-8").split() if self.log.exists() else []
        return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]


class Fleet:
    """Nodes on one database, started on demand, and a trigger-only workflow on it (never hosted)."""

    def __init__(self, args: list[str], adapters: tuple[Any, ...], logs: Path) -> None:
        self.args = args
        self.adapters = adapters
        self.logs = logs
        self.nodes: list[Node] = []
        self.wf = three_steps("fleet").build(*adapters, MemoryRoleScheduler())

    def start(self, step_seconds: float = 0.0, in_flight: int = 0) -> Node:
        """One more node, once ready; each of its steps takes ``step_seconds``."""
        return self.start_many(1, step_seconds, in_flight)[0]

    def start_many(self, count: int, step_seconds: float = 0.0, in_flight: int = 0) -> list[Node]:
        """``count`` more nodes, launched together, once all are ready (``in_flight``: their max_in_flight)."""
        launched = [
            Node(self.args, self.logs / f"steps-{len(self.nodes) + i}.log", step_seconds, in_flight)
            for i in range(count)
        ]
        self.nodes.extend(launched)
        return [node.wait_ready() for node in launched]

    def close(self) -> None:
        """Kill every node still running; close the adapters."""
        for node in self.nodes:
            node.stop(signal.SIGKILL)
        for adapter in self.adapters:
            adapter.close()


def _postgres_fleet(dsn: str, schema: str, logs: Path) -> Fleet:
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore

    adapters = (PostgresEventStreamer(dsn, schema=schema), PostgresRecordStore(dsn, schema=schema))
    return Fleet(["postgres", dsn, schema], adapters, logs)


def _mysql_fleet(dsn: str, logs: Path) -> Fleet:
    from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore

    return Fleet(["mysql", dsn], (MysqlEventStreamer(dsn), MysqlRecordStore(dsn)), logs)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
        "sqlite",
    ]
)
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Callable[..., Node], Any]]:
    """``(start_nodes(count, step_seconds=0), trigger_only_workflow)`` on the test's database; all stopped after."""
    if request.param == "postgres":
        made = _postgres_fleet(request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema"), tmp_path)
    elif request.param == "mysql":
        made = _mysql_fleet(request.getfixturevalue("mysql_dsn"), tmp_path)
    else:
        from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore

        path = str(tmp_path / "fleet.db")
        made = Fleet(["sqlite", path], (SqliteEventStreamer(path), SqliteRecordStore(path)), tmp_path)
    try:
        yield made.start_many, made.wf
    finally:
        made.close()


def _completed(wf: Any, limit: int = RUNS + 1) -> int:
    return len(wf.record_store.list(wf.name, limit=limit, filter=af.RecordFilter(run_states=(af.RunState.COMPLETED,))))


def test_three_nodes_share_the_runs_and_do_each_step_once(fleet):
    """Three node processes, 2,000 runs: every run completes once, each step runs once, no role on two nodes."""
    start, wf = fleet
    nodes = start(3)
    run_ids = [wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(RUNS)]
    doubles: list[str] = []

    def done() -> bool:
        held = Counter(key for node in nodes for key in node.running())
        doubles.extend(key for key, count in held.items() if count > 1)
        return _completed(wf) == RUNS

    eventually(done, timeout=240, what=f"all {RUNS} runs completed")
    logs = []
    for node in nodes:
        code, err = node.stop()
        assert code == 0, err
        logs.append(err)
    assert not doubles, f"roles worked by two nodes at once: {sorted(set(doubles))}"
    steps = [step for node in nodes for step in node.steps()]
    twice = {step for step, count in Counter(steps).items() if count > 1}
    assert not twice, f"steps run twice: {sorted(twice)[:5]}; the nodes' logs:\n" + "\n".join(logs)
    assert set(steps) == {(run_id, s) for run_id in run_ids for s in (1, 2, 3)}, "a step never ran"
    assert sum(1 for node in nodes if node.steps()) >= 2, "one node did all the work: the roles were not shared"
    for run_id in run_ids[:50]:
        assert [r.meta.version for r in wf.record_store.snapshots(run_id)] == [1, 2, 3, 4]


def _all_stored_once(wf: Any, run_ids: list[str]) -> None:
    """Every run completed, each of its transitions stored exactly once (versions 1..4)."""
    assert _completed(wf, len(run_ids) + 1) >= len(run_ids)
    for run_id in run_ids:
        assert [r.meta.version for r in wf.record_store.snapshots(run_id)] == [1, 2, 3, 4], run_id


def _complete_one(wf: Any, name: str) -> float:
    """Seconds from triggering a new run to its completion."""
    started = time.monotonic()
    run_id = wf.trigger(name, Item(name))
    wf.await_status(name, run_id, Stage.DONE, timeout=60)
    return time.monotonic() - started


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_node_that_dies_or_stops_mid_load_loses_nothing(fleet, signum):
    """One of three nodes goes mid-load: every run completes, each transition stored once; a new run completes."""
    start, wf = fleet
    nodes = start(3)
    run_ids = [wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(LOAD)]
    eventually(lambda: _completed(wf) >= LOAD // 4, timeout=120, what="a quarter of the runs completed")
    victim = max(nodes, key=lambda node: len(node.running()))
    code, err = victim.stop(signum)
    if signum == signal.SIGTERM:
        assert code == 0, err
    took = _complete_one(wf, "after")
    eventually(lambda: _completed(wf) == LOAD + 1, timeout=120, what="every run completed")
    for node in nodes:
        if node is not victim:
            code, err = node.stop()
            assert code == 0, err
    _all_stored_once(wf, run_ids)
    # The targets (5 s after a kill, 1 s after a stop) are measured in benchmarks/; here: it moved on.
    assert took < 30, f"a run triggered after the {signal.Signals(signum).name} took {took:.1f}s"


# Not on SQLite: a process frozen inside a write transaction keeps the file's write lock,
# and every other process waits for it to wake or die (docs/multi-node.md). PostgreSQL and
# MariaDB end a transaction left idle after 5 s (the adapters set the session's timeout).
@pytest.mark.parametrize(
    "fleet",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
    indirect=True,
)
def test_a_frozen_node_wakes_after_its_roles_moved_and_rejoins_without_a_restart(fleet):
    """SIGSTOP one node past its lease: the others take its roles and finish the runs; after SIGCONT it works again."""
    start, wf = fleet
    nodes = start(3)
    every = set().union(*(node.running() for node in nodes))
    run_ids = [wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(LOAD)]
    frozen = next(node for node in nodes if node.running())
    others = [node for node in nodes if node is not frozen]
    eventually(lambda: _completed(wf) >= LOAD // 10, timeout=120, what="the runs under way")
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        eventually(
            lambda: set().union(*(node.running() for node in others)) >= every,
            timeout=30,
            what="the frozen node's roles held by the others",
        )
        eventually(lambda: _completed(wf) == LOAD, timeout=120, what="every run completed while it was frozen")
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    eventually(lambda: bool(frozen.running()), timeout=30, what="the woken node working a share again")
    took = _complete_one(wf, "after")
    for node in nodes:
        code, err = node.stop()
        assert code == 0, err
    _all_stored_once(wf, run_ids)
    assert took < 30


def test_a_node_joining_a_busy_fleet_takes_its_share_without_stalling_the_runs(fleet):
    """Two nodes work a backlog; a third joins: it takes roles and works steps, and the runs never stop moving."""
    start, wf = fleet
    # Each step waits 10 ms, two at a time per shard: a backlog that lasts several seconds, well
    # past the time the hand-overs take (which wait for the steps in hand).
    pace, in_flight = 0.01, 2
    first = start(2, pace, in_flight)
    run_ids = [wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(RUNS)]
    eventually(lambda: _completed(wf) >= RUNS // 5, timeout=120, what="a fifth of the runs completed")
    (joined,) = start(1, pace, in_flight)
    nodes = [*first, joined]
    # Progress sampled while the roles move over: the longest time with no run completing.
    last_count, last_change, longest = _completed(wf), time.monotonic(), 0.0
    doubles: list[str] = []

    def done() -> bool:
        nonlocal last_count, last_change, longest
        held = Counter(key for node in nodes for key in node.running())
        doubles.extend(key for key, count in held.items() if count > 1)
        count, now = _completed(wf, len(run_ids) + 1), time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        longest = max(longest, now - last_change)
        if count >= len(run_ids) - RUNS // 10 and not joined.steps():
            # A quick machine may near the backlog's end before the joined node holds a
            # role: more runs, so it has work to take (at most a few waves).
            base = len(run_ids)
            run_ids.extend(wf.trigger(f"r{base + i}", Item(f"r{base + i}")) for i in range(RUNS // 10))
        return count == len(run_ids)

    eventually(done, timeout=240, what="every run completed")
    for node in nodes:
        code, err = node.stop()
        assert code == 0, err
    assert joined.steps(), "the node that joined never worked a step"
    assert not doubles, f"roles worked by two nodes at once: {sorted(set(doubles))}"
    steps = [step for node in nodes for step in node.steps()]
    assert not {step for step, count in Counter(steps).items() if count > 1}, "a step ran twice"
    _all_stored_once(wf, run_ids)
    # A hand-over waits for the batch in hand only: well under a second; 5 s means a stall.
    assert longest < 5, f"no run completed for {longest:.1f}s while the node joined"


@pytest.fixture
def cluster() -> Iterator[Any]:
    """A PostgreSQL cluster of the test's own (see tests/adapters/postgres/_pg_cluster.py), removed after."""
    with throwaway_cluster() as made:
        yield made


@pytest.fixture
def mariadb() -> Iterator[Any]:
    """A MariaDB server of the test's own (see tests/adapters/mysql/_mysql_server.py), removed after."""
    with throwaway_server() as made:
        yield made


@pytest.mark.postgres
def test_three_nodes_finish_every_run_when_the_database_restarts(cluster, tmp_path):
    """The server stops for 3 s under three busy nodes and starts again: every run completes, stored once."""
    _restart_under_three_nodes(cluster, _postgres_fleet(cluster.dsn, "fleet", tmp_path))


@pytest.mark.mysql
def test_three_nodes_finish_every_run_when_the_mysql_server_restarts(mariadb, tmp_path):
    """The same on MySQL/MariaDB: the server stops for 3 s under three busy nodes and starts again."""
    _restart_under_three_nodes(mariadb, _mysql_fleet(mariadb.dsn, tmp_path))


def _restart_under_three_nodes(server: Any, made: Fleet) -> None:
    """Three nodes work LOAD runs; ``server`` stops for 3 s and starts again: every run completes, stored once."""
    try:
        nodes = made.start_many(3)
        run_ids = [made.wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(LOAD)]
        eventually(lambda: _completed(made.wf) >= LOAD // 10, timeout=120, what="runs under way")
        server.stop("fast")
        time.sleep(3.0)  # the outage itself (no connection can be made meanwhile), not a synchronisation
        server.start()

        def all_completed() -> bool:
            try:
                return _completed(made.wf) == LOAD
            except af.ActorflowError:  # the test's own connections find the server restarting too
                return False

        eventually(all_completed, timeout=180, what="every run completed after the restart")
        for node in nodes:
            code, err = node.stop()
            assert code == 0, err
        _all_stored_once(made.wf, run_ids)
        steps = [step for node in nodes for step in node.steps()]
        assert set(steps) == {(run_id, s) for run_id in run_ids for s in (1, 2, 3)}, "a step never ran"
    finally:
        if not server.running():
            server.start()
        made.close()
