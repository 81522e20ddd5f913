"""``actorflow runs``: list, inspect and act on the runs in a store, without the workflows' code.

Every subcommand opens the store named by ``--dsn`` (``postgresql://...``,
``mysql://...`` or ``sqlite:///PATH``, or ``ACTORFLOW_DSN``) through `RunsAdmin`, prints its result on
stdout and nothing else (no log lines), and exits with a status a script can rely on:
0 done, 6 a run not found, 7 an action the run's state refuses, 2 bad usage, 3 bad
input, 4 the database away. ``--json`` prints JSON instead of text. Only ``callback``
needs the workflow's code (``--app MODULE:ATTR``, as for ``actorflow run``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from actorflow._redact import redact
from actorflow.admin import ACTION_DONE, RUN_STATE_NAMES, RunsAdmin, object_for_people, parse_filter, summary
from actorflow.errors import InvalidRunStateTransition, RecordNotFound
from actorflow.protocols import RecordFilter
from actorflow.runstate import RunState

from ._cliargs import CommandError, ExitCode, add_option, load_target, sqlite_path

__all__ = ["OpenedStore", "add_runs_parser", "opened_store"]


# -- the store ------------------------------------------------------------------------


@dataclasses.dataclass
class OpenedStore:
    """A store opened from a DSN: its `RunsAdmin`, and the fleet's live nodes from its role-scheduler tables."""

    admin: RunsAdmin
    nodes: Callable[[], list[Any]]


@contextmanager
def opened_store(dsn: str | None, schema: str) -> Iterator[OpenedStore]:
    """The store of ``dsn`` (``postgresql://...``, ``mysql://...``, ``sqlite:///PATH``), closed afterwards.

    `CommandError` when the DSN is missing or of no known kind (a MySQL DSN the adapter
    refuses is its `MysqlConfigError`, exit status 3). ``schema`` is PostgreSQL's only.
    """
    if not dsn:
        msg = (
            "--dsn (or ACTORFLOW_DSN) is required: postgresql://user@host:5432/db, mysql://user@host:3306/db "
            "or sqlite:///PATH"
        )
        raise CommandError(msg, ExitCode.USAGE)
    if dsn.startswith("sqlite:"):
        path = sqlite_path(dsn)
        if not Path(path).is_file():  # never create a database just to find it empty
            msg = f"no SQLite database at {path!r}"
            raise CommandError(msg)
        sqlite = importlib.import_module("actorflow.adapters.sqlite")
        adapters = [sqlite.SqliteRecordStore(path), sqlite.SqliteEventStreamer(path), sqlite.SqliteRoleScheduler(path)]
    elif dsn.startswith(("postgresql:", "postgres:")):
        postgres = importlib.import_module("actorflow.adapters.postgres")
        adapters = [
            postgres.PostgresRecordStore(dsn, schema=schema, max_connections=4),
            postgres.PostgresEventStreamer(dsn, schema=schema),
            postgres.PostgresRoleScheduler(dsn, schema=schema),
        ]
    elif dsn.strip().lower().startswith("mysql"):
        mysql = importlib.import_module("actorflow.adapters.mysql")
        adapters = [
            mysql.MysqlRecordStore(dsn, max_connections=4),
            mysql.MysqlEventStreamer(dsn),
            mysql.MysqlRoleScheduler(dsn),
        ]
    else:
        msg = f"--dsn must be postgresql://..., mysql://... or sqlite:///PATH, got {redact(dsn)!r:.80}"
        raise CommandError(msg)
    store, events, roles = adapters
    try:
        yield OpenedStore(RunsAdmin(store, events=events), roles.nodes)
    finally:
        for adapter in adapters:
            adapter.close()


@contextmanager
def _admin(args: argparse.Namespace) -> Iterator[RunsAdmin]:
    with opened_store(args.dsn, args.schema) as opened:
        yield opened.admin


# -- filters ------------------------------------------------------------------------------


def _filter(args: argparse.Namespace) -> RecordFilter:
    """The filter given by the flags (`parse_filter`: a status is a number or the name the engine stored)."""
    return parse_filter(
        statuses=args.status or [],
        run_states=args.run_state or [],
        foreign_id_prefix=args.foreign_id or "",
        since=args.since or "",
        until=args.until or "",
    )


def _has_filter(args: argparse.Namespace) -> bool:
    return bool(args.workflow or args.status or args.run_state or args.foreign_id or args.since or args.until)


# -- output -------------------------------------------------------------------------------


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.writelines(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# -- subcommands ------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        msg = f"--limit must be at least 1, got {args.limit}"
        raise CommandError(msg)
    with _admin(args) as admin:
        page = admin.page(
            args.workflow or "", filter=_filter(args), limit=args.limit, order=args.order, after=args.after
        )
    if args.json:
        _print_json({"runs": [summary(r) for r in page.records], "next": page.next})
        return ExitCode.OK
    header = ["RUN ID", "WORKFLOW", "FOREIGN ID", "STATUS", "RUN STATE", "VERSION", "UPDATED"]
    rows = [
        [
            r.run_id,
            r.workflow_name,
            r.foreign_id,
            r.meta.status_description or str(r.status),
            str(r.run_state),
            str(r.meta.version),
            r.updated_at.isoformat(timespec="seconds"),
        ]
        for r in page.records
    ]
    if rows:
        _table([header, *rows], sys.stdout)
    else:
        sys.stdout.write("no runs match\n")
    if page.next is not None:
        sys.stdout.write(f"more: --after {page.next}\n")
    return ExitCode.OK


def _cmd_show(args: argparse.Namespace) -> int:
    with _admin(args) as admin:
        record = admin.get(args.run_id)
        history = admin.history(args.run_id)
    if args.json:
        _print_json({**summary(record), "object": object_for_people(record), "history": [summary(v) for v in history]})
        return ExitCode.OK
    out = sys.stdout
    for key, value in summary(record).items():
        out.write(f"{key + ':':<12} {value}\n")
    shown = "deleted" if record.run_state is RunState.DATA_DELETED else json.dumps(object_for_people(record), indent=2)
    out.write(f"object:\n{shown}\n")
    out.write("history:\n")
    rows = [["VERSION", "AT", "STATUS", "RUN STATE", "REASON"]]
    rows += [
        [
            str(v.meta.version),
            v.updated_at.isoformat(timespec="milliseconds"),
            v.meta.status_description or str(v.status),
            str(v.run_state),
            v.meta.run_state_reason,
        ]
        for v in history
    ]
    _table(rows, out)
    return ExitCode.OK


class _Progress:
    """A progress bar on stderr when it is a terminal (never on stdout: that is the result)."""

    def __init__(self, total: int, *, shown: bool) -> None:
        self._total = total
        self._shown = shown and total > 0
        self._done = 0

    def step(self) -> None:
        self._done += 1
        if self._shown:
            width = 30
            filled = width * self._done // self._total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self._done}/{self._total}")
            if self._done == self._total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_act(args: argparse.Namespace) -> int:
    action: str = args.action
    if args.run_ids and (args.all or _has_filter(args)):
        msg = "give run ids, or --all with filter flags, not both"
        raise CommandError(msg, ExitCode.USAGE)
    if not args.run_ids and not args.all:
        msg = f"name the runs to {action}: RUN_ID ..., or --all (with --workflow, --status, ... to narrow it)"
        raise CommandError(msg, ExitCode.USAGE)
    reason = getattr(args, "reason", "") or ""
    results: list[dict[str, Any]] = []
    worst = ExitCode.OK
    with _admin(args) as admin:
        if args.run_ids:
            run_ids = list(dict.fromkeys(args.run_ids))
        else:  # read first: acting changes what matches
            run_ids = [r.run_id for r in admin.matching(args.workflow or "", filter=_filter(args))]
        progress = _Progress(len(run_ids), shown=args.all and args.progress and sys.stderr.isatty())
        for run_id, outcome in admin.act_each(action, run_ids, reason):
            if isinstance(outcome, RecordNotFound):
                results.append({"run_id": run_id, "result": "not found", "error": f"no run {run_id}"})
                worst = ExitCode.NOT_FOUND
            elif isinstance(outcome, InvalidRunStateTransition):
                results.append({"run_id": run_id, "result": "refused", "error": f"run {run_id}: {outcome}"})
                if worst is ExitCode.OK:
                    worst = ExitCode.REFUSED
            else:
                results.append({"run_id": run_id, "result": ACTION_DONE[action], "version": outcome.meta.version})
            progress.step()
    if args.json:
        _print_json({"action": action, "matched": len(run_ids), "results": results})
        return worst
    for result in results:
        if "error" in result:
            sys.stderr.write(f"actorflow runs {action}: {result['result']}: {result['error']}\n")
        else:
            sys.stdout.write(f"{result['result']} {result['run_id']} (version {result['version']})\n")
    if args.all:
        changed = sum(1 for result in results if "error" not in result)
        sys.stdout.write(f"{changed} of {len(run_ids)} matching runs {ACTION_DONE[action]}\n")
    return worst


def _status_member(wf: Any, text: str) -> Any:
    """The workflow's status named by ``text``: its number, its member name, or its description."""
    from actorflow.status import status_name  # noqa: PLC0415 - keep startup light

    status_type = wf.engine.config.status_type
    for member in status_type:
        if text in (str(int(member)), member.name, status_name(member)):
            return member
    names = ", ".join(member.name for member in status_type)
    msg = f"{text!r} is not a status of {wf.name!r}; one of {names}"
    raise CommandError(msg)


def _cmd_callback(args: argparse.Namespace) -> int:
    from actorflow.workflow import Workflow  # noqa: PLC0415

    workflows = [
        wf for item in load_target(args.app) for wf in ([item] if isinstance(item, Workflow) else item.workflows)
    ]
    if args.workflow:
        workflows = [wf for wf in workflows if wf.name == args.workflow]
        if not workflows:
            msg = f"{args.app} has no workflow named {args.workflow!r}"
            raise CommandError(msg)
    if len(workflows) != 1:
        msg = f"{args.app} has {len(workflows)} workflows: name one with --workflow"
        raise CommandError(msg, ExitCode.USAGE)
    wf = workflows[0]
    if args.payload is not None and args.payload_file is not None:
        msg = "give --payload or --payload-file, not both"
        raise CommandError(msg, ExitCode.USAGE)
    if args.payload_file is not None:
        try:
            payload: bytes | None = Path(args.payload_file).read_bytes()
        except OSError as exc:
            msg = f"--payload-file {args.payload_file}: {exc.strerror or exc}"
            raise CommandError(msg) from exc
    else:
        payload = None if args.payload is None else args.payload.encode()
    if payload is not None and args.json_payload:
        try:
            json.loads(payload)
        except ValueError as exc:
            msg = f"the payload is not JSON ({exc}); pass --raw to send it as it is"
            raise CommandError(msg) from exc
    status = _status_member(wf, args.status)
    wf.engine.record_store.latest(wf.name, args.foreign_id)  # RecordNotFound (exit 6) before anything is done
    wf.callback(args.foreign_id, status, payload)
    after = wf.engine.record_store.latest(wf.name, args.foreign_id)
    if args.json:
        _print_json({"called_back": True, "run": summary(after)})
    else:
        sys.stdout.write(
            f"called back {args.foreign_id!r} at {status.name}: run {after.run_id} now at "
            f"{after.meta.status_description or after.status} ({after.run_state}, version {after.meta.version})\n"
        )
    return ExitCode.OK


# -- the parser ---------------------------------------------------------------------------


def _store_options(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser, "dsn", help="the store: postgresql://user@host:5432/db, mysql://user@host:3306/db or sqlite:///PATH"
    )
    add_option(parser, "schema", default="public", help="PostgreSQL schema of the tables")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts) instead of text")


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", help="only runs of this workflow")
    parser.add_argument(
        "--status", action="append", help="only runs at this status: its number or stored name (repeatable)"
    )
    parser.add_argument(
        "--run-state",
        action="append",
        help=f"only runs in this run state (repeatable): {', '.join(RUN_STATE_NAMES)}",
    )
    parser.add_argument("--foreign-id", help="only runs whose foreign id starts with this (exactly)")
    parser.add_argument("--since", help="only runs created after this ISO 8601 time")
    parser.add_argument("--until", help="only runs created before this ISO 8601 time")


def add_runs_parser(sub: Any) -> list[argparse.ArgumentParser]:
    """Add ``runs`` and its subcommands to the ``actorflow`` parser; the leaf parsers."""
    runs = sub.add_parser("runs", help="list, inspect and act on the runs in a store (no workflow code needed)")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)

    listing = runs_sub.add_parser("list", help="list runs, newest first, filtered, a page at a time")
    _store_options(listing)
    _filter_options(listing)
    listing.add_argument("--limit", type=int, default=50, help="runs per page (default 50)")
    listing.add_argument("--order", choices=["desc", "asc"], default="desc", help="newest first (desc) or oldest")
    listing.add_argument("--after", help="the cursor printed after a page ('more: --after ...'): the next page")
    listing.set_defaults(func=_cmd_list)

    show = runs_sub.add_parser("show", help="one run: its fields, its object and every version it went through")
    show.add_argument("run_id", help="the run's id")
    _store_options(show)
    show.set_defaults(func=_cmd_show)

    leaves = [listing, show]
    for action, what in (
        ("pause", "pause runs: their steps stop until resumed"),
        ("resume", "resume paused runs: a node runs their current step again"),
        ("cancel", "cancel runs: they never run a step again"),
        ("delete", "request deletion of the data of finished runs"),
    ):
        parser = runs_sub.add_parser(action, help=what)
        parser.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="the runs (or --all with filter flags)")
        _store_options(parser)
        _filter_options(parser)
        parser.add_argument("--all", action="store_true", help="every run matching the filter flags")
        parser.add_argument(
            "--no-progress", dest="progress", action="store_false", help="no progress bar (shown on a terminal)"
        )
        if action != "resume":
            parser.add_argument("--reason", default="", help="why (stored with the run)")
        parser.set_defaults(func=_cmd_act, action=action)
        leaves.append(parser)

    callback = runs_sub.add_parser("callback", help="hand a payload to a workflow's callback (needs --app)")
    callback.add_argument("foreign_id", help="the run's foreign id (its latest run)")
    callback.add_argument("status", help="the status whose callback gets it: its number, member name or name")
    callback.add_argument("--app", required=True, help="MODULE:ATTR naming the workflows (as for actorflow run)")
    callback.add_argument("--workflow", help="which workflow of --app (needed when it has several)")
    callback.add_argument("--payload", help="the payload (JSON unless --raw)")
    callback.add_argument("--payload-file", help="read the payload from this file")
    callback.add_argument(
        "--raw", dest="json_payload", action="store_false", help="send the payload as it is (not checked as JSON)"
    )
    callback.add_argument("--json", action="store_true", help="print JSON (for scripts) instead of text")
    callback.set_defaults(func=_cmd_callback)
    leaves.append(callback)
    return leaves
