"""The ``actorflow`` command: run a node, draw a workflow, try the demo, run the benchmark.

Every flag can also come from an ``ACTORFLOW_<FLAG>`` environment variable (shown in
``--help``); only this module reads the environment. A flag given on the command line
wins over its variable; a variable with a bad value is an error only for a subcommand
that uses it, and only when the flag is not given.

A user error (a bad flag value or variable, a DSN, a schema, a target, a server that
cannot be reached) is one line on stderr, ``actorflow <subcommand>: error: <message>``
(passwords in it hidden), and a distinct exit status (`ExitCode`):

====  ==========================================================================
0     success
1     an unexpected error: a bug, reported with its traceback
2     usage: an unknown or malformed flag (argparse), a missing required option
3     bad configuration or input: a flag or ``ACTORFLOW_*`` value, a DSN, a
      schema, a ``MODULE:ATTR`` target, a workflow definition, a metrics address
4     a server cannot be reached or failed: PostgreSQL, MySQL, Kafka, a SQLite file
5     a workflow operation failed (any other actorflow error)
6     not found: no run with that id, no run of that foreign id
7     refused: the run's state does not allow the action
130   interrupted (Ctrl-C)
====  ==========================================================================

``--debug`` (or ``ACTORFLOW_DEBUG=1``) prints the traceback of a user error too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from actorflow import __version__
from actorflow._redact import redact
from actorflow._signals import run_until_stopped
from actorflow.backends import BACKENDS
from actorflow.errors import (
    ActorflowError,
    CodecError,
    CorruptRecord,
    InvalidRunStateTransition,
    InvalidTransition,
    RecordNotFound,
    UnknownStatus,
    WorkflowInProgress,
)
from actorflow.log import JsonFormatter

from ._cliargs import CommandError, ExitCode, add_option, load_target, resolve_env, sqlite_path
from .cli_runs import add_runs_parser, opened_store

__all__ = ["CommandError", "ExitCode", "load_target", "main"]

# How long `actorflow run` lets the steps in hand finish on SIGTERM/SIGINT: a process
# manager's own grace (Kubernetes: 30 s, systemd: 90 s) is longer, so the node exits
# by itself first, having released its roles.
_RUN_STOP_GRACE = 10.0


_EPILOG = """\
exit status:
  0    success
  1    an unexpected error (a bug): the traceback is printed
  2    usage: an unknown or malformed flag, a missing required option
  3    bad configuration or input: a flag or ACTORFLOW_* value, a DSN, a schema,
       a MODULE:ATTR target, a workflow definition, a metrics address
  4    a server cannot be reached or failed: PostgreSQL, MySQL, Kafka, a SQLite file
  5    a workflow operation failed (any other actorflow error)
  6    not found: no run with that id, no run of that foreign id
  7    refused: the run's state does not allow the action
  130  interrupted (Ctrl-C)

An error is one line on stderr; --debug (or ACTORFLOW_DEBUG=1) adds its traceback.
"""

# Actorflow's ValueErrors that are about a run or stored data, not about what the user gave.
_RUN_VALUE_ERRORS = (CodecError, CorruptRecord, InvalidRunStateTransition, InvalidTransition, UnknownStatus)


def _share_roles(workflows: list[Any], kind: str) -> None:
    """Claim the workflows' roles through the lease table of their own record store's database."""
    shared: dict[Any, Any] = {}
    for wf in workflows:
        store = wf.record_store
        if kind == "postgres":
            postgres = importlib.import_module("actorflow.adapters.postgres")
            if not isinstance(store, postgres.PostgresRecordStore):
                msg = f"--roles postgres needs a PostgresRecordStore; {wf.name!r} keeps its records in {store!r}"
                raise CommandError(msg)
            key: Any = store.db.identity
            if key not in shared:
                shared[key] = postgres.PostgresRoleScheduler(store.db.dsn, schema=store.db.schema)
        elif kind == "mysql":
            mysql = importlib.import_module("actorflow.adapters.mysql")
            if not isinstance(store, mysql.MysqlRecordStore):
                msg = f"--roles mysql needs a MysqlRecordStore; {wf.name!r} keeps its records in {store!r}"
                raise CommandError(msg)
            key = ("mysql", *store.db.identity)
            if key not in shared:
                shared[key] = mysql.MysqlRoleScheduler(store.db.dsn)
        else:
            sqlite = importlib.import_module("actorflow.adapters.sqlite")
            if not isinstance(store, sqlite.SqliteRecordStore):
                msg = f"--roles sqlite needs a SqliteRecordStore; {wf.name!r} keeps its records in {store!r}"
                raise CommandError(msg)
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
            "(PostgresRoleScheduler, MysqlRoleScheduler, SqliteRoleScheduler) "
            "or run with --roles postgres|mysql|sqlite",
            wf.name,
            type(wf.role_scheduler).__name__,
        )


def _check_can_bind(host: str, port: int) -> None:
    """Fail now, and clearly, when the metrics endpoint could not be served on ``host:port`` (IPv4, as it is)."""
    try:
        infos = socket.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds
            probe.bind(address)
    except OSError as exc:
        msg = f"cannot serve metrics on --metrics-host {host} --metrics-port {port}: {exc.strerror or exc}"
        raise CommandError(msg) from exc


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _cmd_run(args: argparse.Namespace) -> int:
    from actorflow.runtime.supervisor import Supervisor  # noqa: PLC0415

    # A node is an application: its log goes to stderr (the library alone logs nowhere).
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=str(args.log_level).upper(), handlers=[handler])

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
        host = str(args.metrics_host)
        if port is not None:
            _check_can_bind(host, port)
        supervisor = Supervisor(
            items,
            metrics_port=port,
            metrics_host=host,
            stop_grace=_RUN_STOP_GRACE if grace is None else grace,
        )

    def ready() -> None:
        names = ", ".join(wf.name for wf in supervisor.workflows)
        port = supervisor.metrics_port
        host = _url_host(supervisor.metrics_host)
        where = "" if port is None else f"; metrics on http://{host}:{port}/metrics"
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


def _check_backend_options(args: argparse.Namespace) -> None:
    """The options a server backend cannot do without, asked for before anything starts."""
    if args.backend == "postgres" and not args.dsn:
        msg = "--backend postgres needs --dsn (or ACTORFLOW_DSN), e.g. postgresql://user@localhost:5432/db"
        raise CommandError(msg, ExitCode.USAGE)
    if args.backend == "mysql" and not args.dsn:
        msg = "--backend mysql needs --dsn (or ACTORFLOW_DSN), e.g. mysql://user@localhost:3306/db"
        raise CommandError(msg, ExitCode.USAGE)
    if args.backend == "kafka" and not args.bootstrap_servers:
        msg = "--backend kafka needs --bootstrap-servers (or ACTORFLOW_BOOTSTRAP_SERVERS), e.g. localhost:9092"
        raise CommandError(msg, ExitCode.USAGE)


def _cmd_demo(args: argparse.Namespace) -> int:
    from actorflow.demo import run_demo  # noqa: PLC0415

    _check_backend_options(args)
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
            msg = "--vs dbos needs --dsn (a PostgreSQL DSN both engines use)"
            raise CommandError(msg, ExitCode.USAGE)
        single = 200 if args.latency_runs is None else int(args.latency_runs)
        runs = None if args.runs is None else int(args.runs)
        return run_vs(dsn=args.dsn, single=single, parallel=int(args.parallel), runs=runs, output=args.output)
    from actorflow.bench import run_bench  # noqa: PLC0415

    _check_backend_options(args)
    return run_bench(
        runs=10_000 if args.runs is None else int(args.runs),
        latency_runs=1000 if args.latency_runs is None else int(args.latency_runs),
        backend=args.backend,
        output=args.output,
        dsn=args.dsn,
        bootstrap_servers=args.bootstrap_servers,
    )


def _cmd_db_migrate(args: argparse.Namespace) -> int:
    if not args.dsn:
        msg = (
            "--dsn (or ACTORFLOW_DSN) is required, e.g. postgresql://user@host:5432/db, "
            "mysql://user@host:3306/db or sqlite:///PATH"
        )
        raise CommandError(msg, ExitCode.USAGE)
    if args.dsn.startswith("sqlite://"):
        sqlite = importlib.import_module("actorflow.adapters.sqlite")
        path = sqlite_path(args.dsn)
        applied = sqlite.migrate(path)  # a file it cannot use: SqliteError, exit status 4
        where = f"database {path}"
    elif args.dsn.strip().lower().startswith("mysql"):
        mysql = importlib.import_module("actorflow.adapters.mysql")
        # A DSN it refuses: MysqlConfigError, exit status 3; the server away or failing: MysqlError, 4.
        applied = mysql.migrate(args.dsn)
        where = f"MySQL database {unquote(urlsplit(args.dsn.strip()).path.removeprefix('/'))}"
    else:
        postgres = importlib.import_module("actorflow.adapters.postgres")
        try:
            applied = postgres.migrate(args.dsn, schema=args.schema)
        except ValueError as exc:  # the schema name (a failure on the server is a PostgresError)
            raise CommandError(f"--schema: {exc}") from exc
        where = f"schema {args.schema}"
    done = ", ".join(str(v) for v in applied) or "none (already up to date)"
    print(f"{where}: applied migrations {done}")  # noqa: T201
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    try:
        from actorflow import ui  # noqa: PLC0415 - the ui extra
    except ImportError as exc:
        msg = f"the web UI needs the ui extra: pip install 'actorflow[ui]' ({exc})"
        raise CommandError(msg) from exc
    from actorflow.workflow import Workflow  # noqa: PLC0415

    host, port, token = str(args.host), int(args.port), args.token or None
    if host not in ui.LOOPBACK and token is None:
        msg = f"--host {host} serves beyond this machine: give --token (or ACTORFLOW_UI_TOKEN); every request needs it"
        raise CommandError(msg)
    workflows: dict[str, Any] = {}
    if args.app:
        for item in load_target(args.app):
            for wf in [item] if isinstance(item, Workflow) else item.workflows:
                workflows[wf.name] = wf
    with opened_store(args.dsn, args.schema) as opened:
        opened.admin.page(limit=1)  # the database answers (exit 4 now, not at the first page)
        sources = ui.Sources(opened.admin, workflows=workflows, nodes=opened.nodes)
        app = ui.create_app(sources, read_only=args.read_only, token=token)
        try:
            sock = ui.bind(host, port)
        except OSError as exc:
            msg = f"cannot serve the UI on --host {host} --port {port}: {exc.strerror or exc}"
            raise CommandError(msg) from exc
        url = f"http://{_url_host(host)}:{sock.getsockname()[1]}/"
        mode = " (read-only)" if args.read_only else ""
        ui.serve(app, sock, lambda: print(f"actorflow ui on {url}{mode}", flush=True))  # noqa: T201
    print("stopped", flush=True)  # noqa: T201
    return 0


def _add_ui_parser(sub: Any) -> argparse.ArgumentParser:
    ui: argparse.ArgumentParser = sub.add_parser(
        "ui", help="serve the web UI over a store: browse runs, inspect them, act on them"
    )
    add_option(ui, "dsn", help="the store: postgresql://user@host:5432/db, mysql://user@host:3306/db or sqlite:///PATH")
    add_option(ui, "schema", default="public", help="PostgreSQL schema of the tables")
    add_option(ui, "host", default="127.0.0.1", help="the address to serve on (beyond loopback, --token is required)")
    add_option(ui, "port", default=8080, type=int, help="the port to serve on (0 picks a free one)")
    add_option(ui, "token", default=None, help="a secret every request must carry (Bearer, or basic-auth password)")
    add_option(ui, "app", default=None, help="MODULE:ATTR of the workflows: draws their graphs, offers callbacks")
    ui.add_argument("--read-only", action="store_true", help="offer no action: browse and inspect only")
    ui.set_defaults(func=_cmd_ui)
    return ui


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorflow",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error [env ACTORFLOW_DEBUG=1]")
    parser.add_argument("--version", action="version", version=f"actorflow {__version__}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a node for the workflows at MODULE:ATTR until SIGINT/SIGTERM")
    run.add_argument("target", help="MODULE:ATTR naming a Workflow, a list of them, a Supervisor, or a factory")
    add_option(run, "metrics-port", type=int, help="serve /metrics and /healthz on this port (0 picks a free one)")
    add_option(
        run,
        "metrics-host",
        default="127.0.0.1",
        help="the address /metrics and /healthz are served on (0.0.0.0: every interface); "
        "with --metrics-port, unless the target is a Supervisor (it has its own)",
    )
    add_option(
        run,
        "roles",
        default="own",
        choices=["own", "postgres", "mysql", "sqlite"],
        help="claim roles through the workflows' own role scheduler, or the lease table of their record store's "
        "database (a fleet of nodes on one database)",
    )
    add_option(
        run, "log-level", default="info", choices=["debug", "info", "warning", "error"], help="what the node logs"
    )
    add_option(
        run,
        "log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object per line (time, level, logger, message, and the run's context)",
    )
    add_option(
        run,
        "stop-grace",
        type=float,
        default=None,
        help=f"seconds a stop waits for the steps in hand before abandoning them (default {_RUN_STOP_GRACE:g})",
    )
    run.set_defaults(func=_cmd_run)

    diagram = sub.add_parser("diagram", help="print the Mermaid diagram of the workflows at MODULE:ATTR")
    diagram.add_argument("target", help="MODULE:ATTR naming a Workflow, a list of them, a Supervisor, or a factory")
    diagram.add_argument(
        "--direction", default="LR", choices=["LR", "TB", "RL", "BT"], help="the diagram's direction (Mermaid's)"
    )
    diagram.set_defaults(func=_cmd_diagram)

    demo = sub.add_parser("demo", help="run a real workflow over many runs and show what happens")
    add_option(demo, "runs", default=2000, type=int, help="how many orders to process")
    add_option(demo, "metrics-port", default=0, type=int, help="port for /metrics (0 picks a free one)")
    add_option(demo, "backend", default="sqlite", choices=list(BACKENDS), help="where runs are stored")
    add_option(demo, "path", default=None, help="SQLite database file (default: a temporary one, removed at the end)")
    add_option(
        demo,
        "dsn",
        default=None,
        help="PostgreSQL or MySQL DSN for --backend postgres or mysql (kafka: records in that database; "
        "mysql makes a database of its own on that server, dropped at the end)",
    )
    add_option(demo, "bootstrap-servers", default=None, help="Kafka brokers for --backend kafka, e.g. localhost:9092")
    demo.add_argument("--serve", action="store_true", help="keep serving the metrics after the runs finish")
    demo.set_defaults(func=_cmd_demo)

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_migrate = db_sub.add_parser(
        "migrate", help="create or upgrade the schema of a PostgreSQL, MySQL/MariaDB or SQLite database"
    )
    add_option(
        db_migrate,
        "dsn",
        help="postgresql://user@host:5432/db, mysql://user@host:3306/db, or sqlite:///PATH for a SQLite file",
    )
    add_option(
        db_migrate, "schema", default="public", help="PostgreSQL schema to migrate (a MySQL DSN names its database)"
    )
    db_migrate.set_defaults(func=_cmd_db_migrate)

    bench = sub.add_parser("bench", help="measure throughput and latency, and append them to BENCHMARKS.md")
    add_option(
        bench, "runs", default=None, type=int, help="runs in the throughput backlog (10,000; --vs: 2,000 and 300)"
    )
    add_option(
        bench, "latency-runs", default=None, type=int, help="single runs timed one after another (1000; --vs: 200)"
    )
    add_option(bench, "backend", default="memory", choices=list(BACKENDS), help="adapters to measure")
    add_option(
        bench,
        "dsn",
        default=None,
        help="database DSN for server backends: postgresql://... or mysql://... (kafka: records in that database)",
    )
    add_option(bench, "bootstrap-servers", default=None, help="Kafka brokers for --backend kafka, e.g. localhost:9092")
    add_option(bench, "output", default="BENCHMARKS.md", help="file the figures are appended to ('-' for none)")
    add_option(
        bench, "vs", default=None, choices=["dbos"], help="run DBOS Transact on the same loads, compare (bench extra)"
    )
    add_option(bench, "parallel", default=4, type=int, help="--vs: actorflow's parallel_count for each step")
    bench.set_defaults(func=_cmd_bench)

    runs_leaves = add_runs_parser(sub)

    ui = _add_ui_parser(sub)

    for leaf in (run, diagram, demo, db_migrate, bench, ui, *runs_leaves):  # also after the subcommand
        leaf.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print an error's traceback")
    return parser


def _subcommand(args: argparse.Namespace) -> str:
    parts = (args.command, getattr(args, "db_command", None), getattr(args, "runs_command", None))
    return " ".join(str(part) for part in parts if part)


def _exit_code(exc: BaseException) -> ExitCode | None:
    """The exit status for a user error, or None for an unexpected one (a bug: let it show)."""
    if isinstance(exc, CommandError):
        return exc.code
    if not isinstance(exc, ActorflowError):
        return None
    if isinstance(exc, RecordNotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, InvalidRunStateTransition | WorkflowInProgress):
        return ExitCode.REFUSED
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, _RUN_VALUE_ERRORS):
        return ExitCode.CONFIG  # BuildError, PostgresConfigError, a bad setting...
    # The server adapters' errors, looked up only if their modules are loaded (their drivers may not be installed).
    postgres = sys.modules.get("actorflow.adapters.postgres")
    if postgres is not None and isinstance(exc, postgres.PostgresError):
        return _postgres_exit_code(exc)
    for module, name in (
        ("actorflow.adapters.mysql", "MysqlError"),  # MysqlConfigError, a ValueError, is CONFIG above
        ("actorflow.adapters.kafka", "KafkaError"),
        ("actorflow.adapters.sqlite", "SqliteError"),
    ):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return ExitCode.BACKEND
    return ExitCode.WORKFLOW


def _postgres_exit_code(exc: BaseException) -> ExitCode:
    """CONFIG when PostgreSQL refused what it was given (a DSN that does not parse, a reserved name), else BACKEND."""
    psycopg = sys.modules.get("psycopg")
    cause = exc.__cause__
    while cause is not None:
        if psycopg is not None and isinstance(cause, psycopg.ProgrammingError):
            return ExitCode.CONFIG
        cause = cause.__cause__
    return ExitCode.BACKEND


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _debug_requested(args: argparse.Namespace) -> bool:
    flag = os.environ.get("ACTORFLOW_DEBUG", "").strip().lower()
    return bool(getattr(args, "debug", False)) or flag in {"1", "true", "yes", "on"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``actorflow`` console script; returns the exit status (`ExitCode`)."""
    args = _parser().parse_args(argv)  # a usage error exits here, with status 2
    where = f"actorflow {_subcommand(args)}"
    try:
        resolve_env(args)
        result: int = args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"{where}: interrupted\n")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a user error in one line, a bug with its traceback
        code = _exit_code(exc)
        if code is None or _debug_requested(args):  # a bug shows its traceback (without passwords)
            sys.stderr.write(redact("".join(traceback.format_exception(exc))))
        if code is None:
            return ExitCode.INTERNAL
        message = _one_line(redact(str(exc))) or type(exc).__name__
        sys.stderr.write(f"{where}: error: {message}\n")
        sys.stderr.flush()
        return code
    return result


if __name__ == "__main__":
    sys.exit(main())
