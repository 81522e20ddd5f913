"""Fleet benchmark: 1, 2 and 3 node processes on one database; failover; the heartbeats' load.

Usage: python benchmarks/fleet.py [--backend postgres|sqlite|both] [--runs N] [--work-ms MS] [--rounds N]
                                  [--output FILE]

* throughput: ``runs`` runs of a 3-step workflow (8 shards a step) are triggered as a
  backlog, then ``n`` node processes start; the rate is taken between 20 % and 80 % of
  the transitions stored (start-up and tail left out); once with steps doing ``work-ms`` of
  pure-Python work each, once with instant steps.
* failover: two nodes, idle; one is SIGKILLed, SIGSTOPped or SIGTERMed, then 20 runs
  are triggered at once; the time until the last completes (some land on the roles of
  the node that went).
* load: transactions per second the database served for ``n`` idle nodes (PostgreSQL's
  ``pg_stat_database``), per node.

Figures are printed and appended to BENCHMARKS.md (``--output -``: not written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_flow import SHARDS, Job, adapters_for, builder

NODE = Path(__file__).with_name("fleet_node.py")
DSN = os.environ.get("ACTORFLOW_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class Database:
    """A fresh schema (PostgreSQL) or file (SQLite) for one measurement."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        if backend == "postgres":
            self.schema = f"fleet_{uuid.uuid4().hex[:8]}"
            self.args = ["postgres", DSN, self.schema]
        else:
            self.dir = tempfile.mkdtemp(prefix="fleet-bench-")
            self.args = ["sqlite", str(Path(self.dir) / "fleet.db")]
        self.wf = builder(0).build(*adapters_for(self.args, shared_roles=False))  # trigger-only, never run

    def transitions(self) -> int:
        """Transitions stored so far (the steps' writes: every version after the first)."""
        return self._count("SELECT count(*) FROM workflow_record_snapshots WHERE version > 1")

    def done(self) -> int:
        """Runs that reached DONE."""
        return self._count("SELECT count(*) FROM workflow_record_snapshots WHERE status = 4")

    def _count(self, query: str) -> int:
        db = self.wf.record_store.db
        if self.backend == "postgres":
            return int(db.fetchone("counting transitions", query)[0])
        return int(db.fetch(query)[0][0])

    def settled(self, nodes: int) -> None:
        """Wait until ``nodes`` nodes hold the step roles and the placement stopped moving."""
        roles = self.roles()
        seen, still = None, 0
        deadline = time.monotonic() + 60
        while still < 5:  # the same holders five looks (a second) in a row
            holders = {role: held for role, held in roles.holders().items() if "-consumer-" in role}
            ok = len(holders) == 3 * SHARDS and len({node for node, _ in holders.values()}) == nodes
            still = still + 1 if ok and holders == seen else 0
            seen = holders
            if time.monotonic() > deadline:
                msg = f"the placement did not settle on {nodes} nodes: {holders}"
                raise RuntimeError(msg)
            time.sleep(0.2)  # a sampling pace
        roles.close()

    def roles(self) -> Any:
        """A role scheduler on the database, to read the lease table (reading never registers a node)."""
        return adapters_for(self.args, shared_roles=True)[2]

    def close(self) -> None:
        """Close the adapters; drop the schema."""
        for adapter in (self.wf.event_streamer, self.wf.record_store):
            adapter.close()
        if self.backend == "postgres":
            from actorflow.adapters.postgres import drop_schema  # noqa: PLC0415 - needs the postgres extra

            drop_schema(DSN, self.schema)


class Nodes:
    """Node processes on one database; their stderr goes to files, and every one is reaped on exit."""

    def __init__(self, db: Database, n: int, work_ms: float, *, wait_ready: bool, shared: bool = True) -> None:
        command = [sys.executable, str(NODE), *db.args, str(work_ms), *([] if shared else ["private"])]
        self.logs = [tempfile.TemporaryFile("w+", encoding="utf-8") for _ in range(n)]  # noqa: SIM115
        self.procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True) for log in self.logs]  # noqa: S603
        if wait_ready:
            for i, proc in enumerate(self.procs):
                line = proc.stdout.readline() if proc.stdout is not None else ""
                if not line.startswith("ready"):
                    msg = f"a node did not start: {line!r}\n{self.log(i)}"
                    raise RuntimeError(msg)

    def log(self, i: int) -> str:
        """The last lines node ``i`` wrote to stderr."""
        self.logs[i].seek(0)
        return "".join(self.logs[i].readlines()[-30:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal every node still running and reap them all; a node that does not stop is an error."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a frozen node must wake to stop
                proc.send_signal(sig)
        for i, proc in enumerate(self.procs):
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                msg = f"node {i} did not stop within 30 s of {signal.Signals(sig).name}:\n{self.log(i)}"
                raise RuntimeError(msg) from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        for log in self.logs:
            log.close()


def throughput(backend: str, n: int, runs: int, work_ms: float) -> float:
    """Transitions per second between 20 % and 80 % of the backlog done, with ``n`` nodes."""
    db = Database(backend)
    try:
        for i in range(runs):
            db.wf.trigger(f"r{i}", Job(f"r{i}"))
        total = 3 * runs
        samples: list[tuple[float, int]] = []
        with Nodes(db, n, work_ms, wait_ready=False) as nodes:  # sampled from the launch: a backlog goes fast
            while not samples or samples[-1][1] < total * 0.8:
                samples.append((time.monotonic(), db.transitions()))
                time.sleep(0.02)  # a sampling pace, not a synchronisation
            nodes.stop()
        t_low, at_low = next(s for s in samples if s[1] >= total * 0.2)
        t_high, at_high = samples[-1]
        if t_high <= t_low:
            msg = f"the backlog of {runs} runs went too fast to time: use more --runs"
            raise RuntimeError(msg)
        return (at_high - at_low) / (t_high - t_low)
    finally:
        db.close()


def failover(backend: str, sig: int | None) -> float:
    """Seconds until 20 runs triggered right after one of two idle nodes got ``sig`` have all completed.

    ``sig`` None: no node goes (the baseline: what 20 runs take on two healthy nodes).
    """
    db = Database(backend)
    try:
        with Nodes(db, 2, 0, wait_ready=True) as nodes:
            db.settled(nodes=2)
            if sig is not None:
                nodes.procs[0].send_signal(sig)
            started = time.monotonic()
            for i in range(20):
                db.wf.trigger(f"f{i}", Job(f"f{i}"))
            # Watched from the database every 10 ms: await_status from another process polls
            # only every polling_frequency (0.5 s), too coarse for this.
            deadline = started + 120
            while db.done() < 20:
                if time.monotonic() > deadline:
                    msg = f"runs still not done 120 s after {sig}"
                    raise RuntimeError(msg)
                time.sleep(0.01)
            took = time.monotonic() - started
            nodes.stop()
        return took
    finally:
        db.close()


def load(n: int, *, shared: bool = True, seconds: float = 10.0) -> float:
    """Transactions per second the database serves ``n`` idle nodes (heartbeats, polls, everything).

    ``shared`` False: one node claiming its roles privately (no lease table), the baseline
    the heartbeats add to.
    """
    import psycopg  # noqa: PLC0415 - needs the postgres extra

    db = Database("postgres")
    try:
        query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        with Nodes(db, n, 0, wait_ready=True, shared=shared) as nodes, psycopg.connect(DSN, autocommit=True) as conn:
            time.sleep(2.0)  # settled
            before = conn.execute(query).fetchone()[0]  # type: ignore[index]
            time.sleep(seconds)
            conn.execute("SELECT pg_stat_clear_snapshot()")
            after = conn.execute(query).fetchone()[0]  # type: ignore[index]
            nodes.stop()
        return (after - before) / seconds
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and append the figures to BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--work-ms", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: fleet",
        "",
        (
            f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cpus, "
            f"Python {platform.python_version()}"
        ),
        (
            f"- command: `python benchmarks/fleet.py --backend {args.backend} --runs {args.runs} "
            f"--work-ms {args.work_ms:g} --rounds {args.rounds}`"
        ),
    ]
    for backend in backends:
        for work in (args.work_ms, 0.0):
            # Rounds interleaved (1, 2, 3 nodes, then again): the machine's drift hits all alike.
            samples: dict[int, list[float]] = {1: [], 2: [], 3: []}
            for _ in range(args.rounds):
                for n, got in samples.items():
                    got.append(throughput(backend, n, args.runs, work))
            rates = {n: statistics.median(got) for n, got in samples.items()}
            label = f"{work:g} ms of CPU per step" if work else "instant steps"
            figures = ", ".join(
                f"{n} node{'s' if n > 1 else ''} {rates[n]:,.0f} tr/s ({min(got):,.0f}-{max(got):,.0f})"
                for n, got in samples.items()
            )
            ratios = f"2 nodes / 1: {rates[2] / rates[1]:.2f}x, 3 / 1: {rates[3] / rates[1]:.2f}x"
            lines.append(f"- {backend}, {label}, median of {args.rounds} (range): {figures}; {ratios}")
            print(lines[-1], flush=True)
        for sig in (None, signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
            if sig == signal.SIGSTOP and backend == "sqlite":
                # A process frozen inside a write transaction keeps SQLite's write lock: every
                # other writer on the file waits for it to wake or die (docs/multi-node.md).
                lines.append("- sqlite, SIGSTOP: not measured (a frozen writer holds the file's lock)")
                continue
            took = failover(backend, sig)
            after = "with both nodes up" if sig is None else f"after {sig.name} to one of two nodes"
            lines.append(f"- {backend}, 20 runs triggered at once {after}: all completed in {took:.2f}s")
            print(lines[-1], flush=True)
    if "postgres" in backends:
        private, idle = load(1, shared=False), {n: load(n) for n in (1, 2, 3)}
        lines.append(
            f"- postgres, idle load: one node with roles of its own {private:.0f} transactions/s; "
            + ", ".join(f"{n} node{'s' if n > 1 else ''} on the lease table {rate:.0f}/s" for n, rate in idle.items())
            + f" (the fleet's share for one node: {idle[1] - private:.1f}/s)"
        )
        print(lines[-1], flush=True)
    if args.output != "-":
        with Path(args.output).open("a", encoding="utf-8") as out:
            out.write("\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
