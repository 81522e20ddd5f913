"""PostgreSQL end to end, the way you run it: a node started by the CLI, a separate producer, the runs CLI to watch.

Three kinds of process share one PostgreSQL database and nothing else:

1. ``actorflow db migrate`` creates the tables;
2. a node, ``actorflow run postgres_cli:workflow --roles postgres`` (claims its roles through
   the database's lease table, so more nodes could join);
3. a producer, ``python postgres_cli.py produce N``, which only triggers runs (it never
   hosts the workflow, so it is never given a role);

and an operator watches and acts with ``actorflow runs``: lists the runs, finds the one
its step paused (a parcel too heavy for the carrier), approves it and resumes it.

Needs PostgreSQL: ``ACTORFLOW_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Everything goes into a schema of its own, dropped at the end. Run it with
``python examples/postgres_cli.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import actorflow as af

HERE = Path(__file__).resolve().parent
DSN = os.environ.get("ACTORFLOW_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = os.environ.get("EXAMPLE_SCHEMA", "")  # set by main() for every process it starts
APPROVALS = Path(os.environ.get("EXAMPLE_APPROVALS", tempfile.gettempdir()))  # where the operator approves


class Status(enum.IntEnum):
    RECEIVED = 1
    LABELLED = 2
    SHIPPED = 3


@dataclasses.dataclass
class Parcel:
    weight_kg: float = 0.0
    label: str = ""


def label(run: af.Run[Parcel, Status]) -> Status:
    """Print a label; a parcel over 30 kg waits for an operator's approval (a file, here)."""
    if run.object.weight_kg > 30 and not (APPROVALS / run.foreign_id).exists():
        return run.pause(f"{run.object.weight_kg} kg is over the carrier's 30 kg: approve it, then resume")
    run.object.label = f"LBL-{run.foreign_id}"
    return Status.LABELLED


def workflow() -> af.Workflow[Parcel, Status]:
    """The workflow on PostgreSQL: records, events, timeouts and role leases in one schema."""
    from actorflow.adapters import postgres as pg  # noqa: PLC0415 - the postgres extra

    b = af.Builder("parcels", Parcel, Status)
    b.add_step(Status.RECEIVED, label, Status.LABELLED)
    b.add_step(Status.LABELLED, lambda _run: Status.SHIPPED, Status.SHIPPED)
    return b.build(
        pg.PostgresEventStreamer(DSN, schema=SCHEMA),
        pg.PostgresRecordStore(DSN, schema=SCHEMA),
        pg.PostgresRoleScheduler(DSN, schema=SCHEMA),
        timeout_store=pg.PostgresTimeoutStore(DSN, schema=SCHEMA),
    )


def produce(count: int) -> None:
    """The producer: trigger ``count`` parcels (every fifth one heavy) and exit."""
    wf = workflow()
    for i in range(count):
        wf.trigger(f"parcel-{i}", Parcel(weight_kg=42.0 if i % 5 == 4 else 2.5))
    print(f"producer: triggered {count} parcels")


def actorflow(env: dict[str, str], *args: str) -> str:
    """Run an ``actorflow`` command to completion; its output (it must succeed)."""
    done = subprocess.run(  # noqa: S603 - this interpreter, the actorflow command
        [sys.executable, "-m", "actorflow", *args], cwd=HERE, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"actorflow {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def listed(env: dict[str, str], run_state: str) -> list[dict]:
    """``actorflow runs list --run-state R --json`` on the example's schema: the runs."""
    out = actorflow(env, "runs", "list", "--schema", env["EXAMPLE_SCHEMA"], "--run-state", run_state, "--json")
    return json.loads(out)["runs"]


def wait_for(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.2)  # another process's runs, watched from outside: look again shortly


def main() -> int:
    try:
        import psycopg  # noqa: PLC0415 - the postgres extra
    except ImportError:
        raise SystemExit('this example needs the postgres extra: pip install "actorflow[postgres]"') from None
    schema = f"example_{uuid.uuid4().hex[:8]}"
    approvals = Path(tempfile.mkdtemp(prefix="approvals-"))
    env = {**os.environ, "ACTORFLOW_DSN": DSN, "EXAMPLE_SCHEMA": schema, "EXAMPLE_APPROVALS": str(approvals)}
    print(actorflow(env, "db", "migrate", "--schema", schema).strip())
    node = subprocess.Popen(
        [sys.executable, "-m", "actorflow", "run", "postgres_cli:workflow", "--roles", "postgres"],
        cwd=HERE,
        env={**env, "ACTORFLOW_LOG_LEVEL": "error"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = node.stdout.readline().strip() if node.stdout is not None else ""
        print(f"node: {started.split(' running ')[0]} running parcels")
        subprocess.run([sys.executable, "postgres_cli.py", "produce", "10"], cwd=HERE, env=env, check=True)

        wait_for("8 parcels shipped", lambda: len(listed(env, "completed")) == 8)
        heavy = sorted((r["foreign_id"], r["run_id"], r["reason"]) for r in listed(env, "paused"))
        print(f"runs list: 8 completed, paused: {[fid for fid, _, _ in heavy]}")
        print(f"why: {heavy[0][2]}")

        for foreign_id, run_id, _ in heavy:  # the operator approves each heavy parcel and resumes it
            (approvals / foreign_id).touch()
            actorflow(env, "runs", "resume", run_id, "--schema", schema)
            print(f"runs resume: {foreign_id} approved and resumed")
        wait_for("every parcel shipped", lambda: len(listed(env, "completed")) == 10)
        shown = json.loads(actorflow(env, "runs", "show", heavy[0][1], "--schema", schema, "--json"))
        states = [v["run_state"] for v in shown["history"]]
        print(f"{heavy[0][0]}: {' -> '.join(states)}; label {shown['object']['label']}")
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=30)
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if node.returncode != 0:
        raise SystemExit(f"the node exited {node.returncode}")
    print("postgres_cli: OK")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["produce"]:
        produce(int(sys.argv[2]))
    else:
        sys.exit(main())
