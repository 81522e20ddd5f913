"""The ``actorflow`` command: run a node, draw a workflow, try the demo, run the benchmark.

Every flag can also come from an ``ACTORFLOW_<FLAG>`` environment variable (shown in
``--help``); only this module reads the environment.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actorflow._signals import run_until_stopped
from actorflow.backends import BACKENDS

__all__ = ["load_target", "main"]

# How long `actorflow run` lets the steps in hand finish on SIGTERM/SIGINT: a process
# manager's own grace (Kubernetes: 30 s, systemd: 90 s) is longer, so the node exits
# by itself first, having released its roles.
_RUN_STOP_GRACE = 10.0


def _env(flag: str, default: Any = None) -> Any:
    return os.environ.get("ACTORFLOW_" + flag.upper().replace("-", "_"), default)


def _add(parser: argparse.ArgumentParser, flag: str, *, default: Any = None, **kwargs: Any) -> None:
    """Add ``--flag`` whose default comes from ``ACTORFLOW_FLAG`` (named in the help)."""
    env = "ACTORFLOW_" + flag.upper().replace("-", "_")
    value = _env(flag, default)
    if value is not None and "type" in kwargs:
        value = kwargs["type"](value)
    help_text = kwargs.pop("help", "")
    parser.add_argument(f"--{flag}", default=value, help=f"{help_text} [env {env}]", **kwargs)


def load_target(spec: str) -> list[Any]:
    """The workflows (or one supervisor) named by ``MODULE:ATTR``; a callable is called first."""
    from actorflow.runtime.supervisor import Supervisor  # noqa: PLC0415 - keep startup light
    from actorflow.workflow import Workflow  # noqa: PLC0415

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        msg = f"expected MODULE:ATTR (e.g. myapp.flows:workflow), got {spec!r}"
        raise SystemExit(msg)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import {module_name!r}: {exc}"
        raise SystemExit(msg) from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        msg = f"module {module_name!r} has no attribute {attr!r}"
        raise SystemExit(msg) from None
    if callable(target) and not isinstance(target, Workflow | Supervisor):
        target = target()
    items = list(target) if isinstance(target, list | tuple) else [target]
    for item in items:
        if not isinstance(item, Workflow | Supervisor):
            msg = f"{spec} is not a Workflow, a list of workflows or a Supervisor: {item!r}"
            raise SystemExit(msg)
    return items


def _share_roles(workflows: list[Any], kind: str) -> None:
    """Claim the workflows' roles through the lease table of their own record store's database."""
    shared: dict[Any, Any] = {}
    for wf in workflows:
        store = wf.record_store
        if kind == "postgres":
            postgres = importlib.import_module("actorflow.adapters.postgres")
            if not isinstance(store, postgres.PostgresRecordStore):
                msg = f"--roles postgres needs a PostgresRecordStore; {wf.name!r} keeps its records in {store!r}"
                raise SystemExit(msg)
            key: Any = store.db.identity
            if key not in shared:
                shared[key] = postgres.PostgresRoleScheduler(store.db.dsn, schema=store.db.schema)
        else:
            sqlite = importlib.import_module("actorflow.adapters.sqlite")
            if not isinstance(store, sqlite.SqliteRecordStore):
                msg = f"--roles sqlite needs a SqliteRecordStore; {wf.name!r} keeps its records in {store!r}"
                raise SystemExit(msg)
            key = store.path
            if key not in shared:
                shared[key] = sqlite.SqliteRoleScheduler(store.path)
        wf.engine.use_role_scheduler(shared[key])


def _warn_if_roles_are_private(wf: Any) -> None:
    """Say so when a second node on the same database would run every step again."""
    from actorflow.capabilities import FencedStore, Membership  # noqa: PLC0415

    if isinstance(wf.record_store, FencedStore) and not isinstance(wf.role_scheduler, Membership):
        logging.getLogger("actorflow").warning(
            "%s: its roles are claimed through %s, which knows only this process: a second node on the same "
            "database would work every role again. Build it with the database's role scheduler "
            "(PostgresRoleScheduler, SqliteRoleScheduler) or run with --roles postgres|sqlite",
            wf.name,
            type(wf.role_scheduler).__name__,
        )


def _cmd_run(args: argparse.Namespace) -> int:
    from actorflow.runtime.supervisor import Supervisor  # noqa: PLC0415

    # A node is an application: its log goes to stderr (the library alone logs nowhere).
    logging.basicConfig(
        level=str(args.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )

    items = load_target(args.target)
    if args.roles != "own":
        _share_roles([item for item in items if not isinstance(item, Supervisor)], args.roles)
    for item in items:
        for wf in item.workflows if isinstance(item, Supervisor) else [item]:
            _warn_if_roles_are_private(wf)
    grace = None if args.stop_grace is None else float(args.stop_grace)
    if len(items) == 1 and isinstance(items[0], Supervisor):
        supervisor = items[0]
        if grace is not None:
            supervisor.stop_grace = grace
    else:
        port = None if args.metrics_port is None else int(args.metrics_port)
        supervisor = Supervisor(items, metrics_port=port, stop_grace=_RUN_STOP_GRACE if grace is None else grace)

    def ready() -> None:
        names = ", ".join(wf.name for wf in supervisor.workflows)
        port = supervisor.metrics_port
        where = "" if port is None else f"; metrics on http://127.0.0.1:{port}/metrics"
        print(f"actorflow node {supervisor.node_id} running {names}{where}", flush=True)  # noqa: T201

    run_until_stopped(supervisor, ready, lambda name: print(f"received {name}; stopping", flush=True))  # noqa: T201
    print("stopped", flush=True)  # noqa: T201
    return 0


def _cmd_diagram(args: argparse.Namespace) -> int:
    from actorflow.visualise import mermaid  # noqa: PLC0415
    from actorflow.workflow import Workflow  # noqa: PLC0415

    for item in load_target(args.target):
        workflows = [item] if isinstance(item, Workflow) else item.workflows
        for wf in workflows:
            sys.stdout.write(mermaid(wf, direction=args.direction))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from actorflow.demo import run_demo  # noqa: PLC0415

    return run_demo(
        runs=int(args.runs),
        metrics_port=int(args.metrics_port),
        serve=args.serve,
        backend=args.backend,
        path=args.path,
        dsn=args.dsn,
        bootstrap_servers=args.bootstrap_servers,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.vs:
        from actorflow.bench_vs import run_vs  # noqa: PLC0415

        if not args.dsn:
            sys.stderr.write("actorflow bench --vs dbos: --dsn (a PostgreSQL DSN both engines use) is required\n")
            return 2
        single = 200 if args.latency_runs is None else int(args.latency_runs)
        runs = None if args.runs is None else int(args.runs)
        return run_vs(dsn=args.dsn, single=single, parallel=int(args.parallel), runs=runs, output=args.output)
    from actorflow.bench import run_bench  # noqa: PLC0415

    return run_bench(
        runs=10_000 if args.runs is None else int(args.runs),
        latency_runs=1000 if args.latency_runs is None else int(args.latency_runs),
        backend=args.backend,
        output=args.output,
        dsn=args.dsn,
        bootstrap_servers=args.bootstrap_servers,
    )


def _cmd_db_migrate(args: argparse.Namespace) -> int:
    import importlib  # noqa: PLC0415

    if not args.dsn:
        msg = "--dsn (or ACTORFLOW_DSN) is required, e.g. postgresql://user@host:5432/db or sqlite:///PATH"
        raise SystemExit(msg)
    if args.dsn.startswith("sqlite://"):
        sqlite = importlib.import_module("actorflow.adapters.sqlite")
        # As SQLAlchemy spells it: sqlite:///relative/path, sqlite:////absolute/path.
        path = args.dsn.removeprefix("sqlite://").removeprefix("/")
        if not path:
            msg = f"a SQLite DSN names a file: sqlite:///PATH, got {args.dsn!r}"
            raise SystemExit(msg)
        try:
            applied = sqlite.migrate(path)
        except (sqlite.SqliteError, ValueError) as exc:
            raise SystemExit(str(exc)) from exc
        where = f"database {path}"
    else:
        postgres = importlib.import_module("actorflow.adapters.postgres")
        try:
            applied = postgres.migrate(args.dsn, schema=args.schema)
        except postgres.PostgresError as exc:
            raise SystemExit(str(exc)) from exc
        where = f"schema {args.schema}"
    done = ", ".join(str(v) for v in applied) or "none (already up to date)"
    print(f"{where}: applied migrations {done}")  # noqa: T201
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorflow", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a node for the workflows at MODULE:ATTR until SIGINT/SIGTERM")
    run.add_argument("target", help="MODULE:ATTR naming a Workflow, a list of them, a Supervisor, or a factory")
    _add(run, "metrics-port", type=int, help="serve /metrics and /healthz on this port")
    _add(
        run,
        "roles",
        default="own",
        choices=["own", "postgres", "sqlite"],
        help="claim roles through the workflows' own role scheduler, or the lease table of their record store's "
        "database (a fleet of nodes on one database)",
    )
    _add(run, "log-level", default="info", choices=["debug", "info", "warning", "error"], help="what the node logs")
    _add(
        run,
        "stop-grace",
        type=float,
        default=None,
        help=f"seconds a stop waits for the steps in hand before abandoning them (default {_RUN_STOP_GRACE:g})",
    )
    run.set_defaults(func=_cmd_run)

    diagram = sub.add_parser("diagram", help="print the Mermaid diagram of the workflows at MODULE:ATTR")
    diagram.add_argument("target")
    diagram.add_argument("--direction", default="LR", choices=["LR", "TB", "RL", "BT"])
    diagram.set_defaults(func=_cmd_diagram)

    demo = sub.add_parser("demo", help="run a real workflow over many runs and show what happens")
    _add(demo, "runs", default=2000, type=int, help="how many orders to process")
    _add(demo, "metrics-port", default=0, type=int, help="port for /metrics (0 picks a free one)")
    _add(demo, "backend", default="sqlite", choices=list(BACKENDS), help="where runs are stored")
    _add(demo, "path", default=None, help="SQLite database file (default: a temporary one, removed at the end)")
    _add(demo, "dsn", default=None, help="PostgreSQL DSN for --backend postgres (or kafka with records in PostgreSQL)")
    _add(demo, "bootstrap-servers", default=None, help="Kafka brokers for --backend kafka, e.g. localhost:9092")
    demo.add_argument("--serve", action="store_true", help="keep serving the metrics after the runs finish")
    demo.set_defaults(func=_cmd_demo)

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_migrate = db_sub.add_parser("migrate", help="create or upgrade the schema of a PostgreSQL or SQLite database")
    _add(db_migrate, "dsn", help="postgresql://user@host:5432/db, or sqlite:///PATH for a SQLite file")
    _add(db_migrate, "schema", default="public", help="PostgreSQL schema to migrate")
    db_migrate.set_defaults(func=_cmd_db_migrate)

    bench = sub.add_parser("bench", help="measure throughput and latency, and append them to BENCHMARKS.md")
    _add(bench, "runs", default=None, type=int, help="runs in the throughput backlog (10,000; --vs: 2,000 and 300)")
    _add(bench, "latency-runs", default=None, type=int, help="single runs timed one after another (1000; --vs: 200)")
    _add(bench, "backend", default="memory", choices=list(BACKENDS), help="adapters to measure")
    _add(bench, "dsn", default=None, help="database DSN for server backends (kafka: records in PostgreSQL)")
    _add(bench, "bootstrap-servers", default=None, help="Kafka brokers for --backend kafka, e.g. localhost:9092")
    _add(bench, "output", default="BENCHMARKS.md", help="file the figures are appended to ('-' for none)")
    _add(bench, "vs", default=None, choices=["dbos"], help="run DBOS Transact on the same loads, compare (bench extra)")
    _add(bench, "parallel", default=4, type=int, help="--vs: actorflow's parallel_count for each step")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``actorflow`` console script."""
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
