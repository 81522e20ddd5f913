"""Three nodes on one database: the steps are shared out, and a node's roles move when it stops.

Each node is a process of its own, started the way you would start it in production:
``python -m actorflow run three_nodes:workflow`` (the ``actorflow run`` command). The
workflow is built with the database's role scheduler (`SqliteRoleScheduler` here,
`PostgresRoleScheduler` with ``ACTORFLOW_DSN=postgresql://...``), so the nodes claim
their roles through a lease table in the database: each role is worked by one node at
a time, spread over the live nodes by rendezvous hashing.

This script (which only triggers runs: it never hosts the workflow, so it is never given
a role) starts three nodes, prints the role map, triggers 30 runs and shows which node ran
which step; then stops one node and shows its roles moved to the other two.

Run it with ``python examples/three_nodes.py`` (SQLite in a temporary folder: no server).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import actorflow as af
from actorflow.adapters import sqlite
from actorflow.capabilities import NodeInfo

HERE = Path(__file__).resolve().parent
NODE = os.environ.get("FLEET_NODE", "")  # set for each node process by main() below


class Status(enum.IntEnum):
    STARTED = 1
    CHECKED = 2
    PRICED = 3
    DONE = 4


@dataclasses.dataclass
class Quote:
    item: str = ""
    worked_by: list[str] = dataclasses.field(default_factory=list)  # which node ran each step


def step(to: Status) -> Callable[[af.Run[Quote, Status]], Status]:
    def run(r: af.Run[Quote, Status]) -> Status:
        r.object.worked_by.append(NODE)
        return to

    return run


def workflow() -> af.Workflow[Quote, Status]:
    """The workflow on the database named by FLEET_DB, its roles claimed through the database's lease table."""
    db = os.environ["FLEET_DB"]
    b = af.Builder("quotes", Quote, Status)
    b.add_step(Status.STARTED, step(Status.CHECKED), Status.CHECKED).with_options(parallel_count=3)
    b.add_step(Status.CHECKED, step(Status.PRICED), Status.PRICED).with_options(parallel_count=3)
    b.add_step(Status.PRICED, step(Status.DONE), Status.DONE).with_options(parallel_count=3)
    # A short poll: this script awaits from another process, where only polling sees the runs move.
    defaults = af.Options(polling_frequency=0.05)
    node_id = NODE or None  # readable ids for the role map; by default host, pid and a random part
    if db.startswith("postgresql://"):
        from actorflow.adapters import postgres as pg  # noqa: PLC0415 - the postgres extra, when asked for

        return b.build(
            pg.PostgresEventStreamer(db),
            pg.PostgresRecordStore(db),
            pg.PostgresRoleScheduler(db, node_id=node_id),
            defaults=defaults,
        )
    return b.build(
        sqlite.SqliteEventStreamer(db),
        sqlite.SqliteRecordStore(db),
        sqlite.SqliteRoleScheduler(db, node_id=node_id),
        defaults=defaults,
    )


def start_node(name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``actorflow run three_nodes:workflow`` as node ``name``; returns once it runs."""
    node = subprocess.Popen(
        [sys.executable, "-m", "actorflow", "run", "three_nodes:workflow", "--log-level", "warning"],
        cwd=HERE,  # where `actorflow run` imports the module from
        env={**env, "FLEET_NODE": name},
        stdout=subprocess.PIPE,
        text=True,
    )
    line = node.stdout.readline().strip() if node.stdout is not None else ""
    print(f"started {line}")  # "actorflow node node-1 running quotes"
    return node


def print_role_map(wf: af.Workflow[Quote, Status], nodes: int) -> None:
    """The live nodes and the roles each holds, once ``nodes`` nodes share the step roles."""
    scheduler = wf.role_scheduler  # reading the fleet never joins it
    deadline = time.monotonic() + 30
    while True:
        live: list[NodeInfo] = scheduler.nodes()
        held = [role for info in live for role in info.roles if "-consumer-" in role]
        if len(live) == nodes and len(held) == 9 and all(info.roles for info in live):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the step roles were not placed on {nodes} nodes within 30 s: {live}")
        time.sleep(0.05)  # the nodes place the roles at their heartbeats: look again shortly
    for info in live:
        roles = ", ".join(sorted(role.removeprefix("quotes-") for role in info.roles))
        print(f"  {info.node_id}: {roles}")


def main() -> int:
    folder = tempfile.mkdtemp(prefix="three-nodes-")
    env = {**os.environ, "FLEET_DB": os.environ.get("ACTORFLOW_DSN") or str(Path(folder) / "quotes.db")}
    os.environ.update(env)
    wf = workflow()  # this process only triggers and reads
    nodes = {name: start_node(name, env) for name in ("node-1", "node-2", "node-3")}
    try:
        print("role map:")
        print_role_map(wf, nodes=3)

        ids = [(f"quote-{i}", wf.trigger(f"quote-{i}", Quote(item=f"item {i}"))) for i in range(30)]
        runs = [wf.await_status(foreign_id, run_id, Status.DONE, timeout=30) for foreign_id, run_id in ids]
        steps = Counter(node for run in runs for node in run.object.worked_by)
        print(f"every run completed: {len(runs)} of {len(ids)}; steps per node: {dict(sorted(steps.items()))}")

        nodes["node-2"].send_signal(signal.SIGTERM)  # a clean stop: it releases its roles at once
        nodes["node-2"].communicate(timeout=30)
        print("node-2 stopped; role map:")
        print_role_map(wf, nodes=2)
        after = wf.trigger("quote-after", Quote(item="after"))
        run = wf.await_status("quote-after", after, Status.DONE, timeout=30)
        print(f"a run triggered after the stop was worked by {sorted(set(run.object.worked_by))}")
    finally:
        for node in nodes.values():
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
        codes = [node.wait(timeout=30) for node in nodes.values()]
        wf.event_streamer.close()
        wf.record_store.close()

    ok = len(runs) == 30 and len(steps) >= 2 and "node-2" not in run.object.worked_by and codes == [0, 0, 0]
    print("three nodes: OK" if ok else "three nodes: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
