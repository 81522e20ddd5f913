"""What every ``actorflow`` subcommand shares: exit statuses, user errors, options read from the environment, targets.

`actorflow.cli` builds the parser and runs the subcommands; the ``runs`` subcommands live in
`actorflow.cli_runs`. Both take these from here, so neither imports the other's internals.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from actorflow.errors import ActorflowError

__all__ = ["CommandError", "ExitCode", "add_option", "load_target", "resolve_env", "sqlite_path"]


class ExitCode(enum.IntEnum):
    """The exit status of the ``actorflow`` command, one per kind of failure."""

    OK = 0
    INTERNAL = 1
    """An unexpected error (a bug): Python's own status, with the traceback."""
    USAGE = 2
    """The command line is wrong: argparse's errors, a missing required option."""
    CONFIG = 3
    """Bad configuration or input: a flag or variable value, a DSN, a schema, a target."""
    BACKEND = 4
    """A server cannot be reached or failed the operation: PostgreSQL, Kafka, a SQLite file."""
    WORKFLOW = 5
    """A workflow operation failed: any other actorflow error."""
    NOT_FOUND = 6
    """What was named does not exist: a run id, a foreign id's run."""
    REFUSED = 7
    """The run's state does not allow the action (a cancelled run cannot be paused)."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (128 + SIGINT, as a shell reports it)."""


class CommandError(ActorflowError):
    """The command cannot do what it was asked (the message says why; `code` is the exit status)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.CONFIG) -> None:
        super().__init__(message)
        self.code = code


def _variable(flag: str) -> str:
    return "ACTORFLOW_" + flag.upper().replace("-", "_")


@dataclasses.dataclass(frozen=True)
class _FromEnv:
    """A flag's default read from its environment variable: converted (and checked) only when used."""

    variable: str
    raw: str
    convert: Callable[[str], Any] | None
    choices: Sequence[Any] | None

    def value(self) -> Any:
        try:
            value = self.raw if self.convert is None else self.convert(self.raw)
        except (TypeError, ValueError) as exc:
            kind = getattr(self.convert, "__name__", "")
            msg = f"{self.variable}={self.raw!r}: not a valid {kind} value ({exc})"
            raise CommandError(msg) from exc
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            msg = f"{self.variable}={self.raw!r}: not one of {allowed}"
            raise CommandError(msg)
        return value


def add_option(parser: argparse.ArgumentParser, flag: str, *, default: Any = None, **kwargs: Any) -> None:
    """Add ``--flag`` whose default comes from ``ACTORFLOW_FLAG`` (named in the help).

    The variable's value is converted when the parsed arguments are (`resolve_env`), not
    here: a bad one then breaks only the subcommand that uses it, and not when the flag
    is given.
    """
    env = _variable(flag)
    raw = os.environ.get(env)
    value = default if raw is None else _FromEnv(env, raw, kwargs.get("type"), kwargs.get("choices"))
    help_text = kwargs.pop("help", "")
    parser.add_argument(f"--{flag}", default=value, help=f"{help_text} [env {env}]", **kwargs)


def resolve_env(args: argparse.Namespace) -> None:
    """Convert the defaults taken from the environment, for the options of the chosen subcommand."""
    for name, value in vars(args).items():
        if isinstance(value, _FromEnv):
            setattr(args, name, value.value())


def load_target(spec: str) -> list[Any]:
    """The workflows (or one supervisor) named by ``MODULE:ATTR``; a callable is called first.

    Raises `CommandError` when ``spec`` names nothing usable.
    """
    from actorflow.runtime.supervisor import Supervisor  # noqa: PLC0415 - keep startup light
    from actorflow.workflow import Workflow  # noqa: PLC0415

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        msg = f"expected MODULE:ATTR (e.g. myapp.flows:workflow), got {spec!r}"
        raise CommandError(msg)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import {module_name!r}: {exc}"
        raise CommandError(msg) from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        msg = f"module {module_name!r} has no attribute {attr!r}"
        raise CommandError(msg) from None
    if callable(target) and not isinstance(target, Workflow | Supervisor):
        _check_takes_no_arguments(spec, target)
        target = target()
    items = list(target) if isinstance(target, list | tuple) else [target]
    for item in items:
        if not isinstance(item, Workflow | Supervisor):
            msg = f"{spec} is not a Workflow, a list of workflows or a Supervisor: {item!r}"
            raise CommandError(msg)
    return items


def _check_takes_no_arguments(spec: str, factory: Callable[..., Any]) -> None:
    """Refuse a factory that cannot be called without arguments (before calling it: its own errors stay its own)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (some builtins): just call it
        return
    try:
        signature.bind()
    except TypeError:
        needed = [
            name
            for name, param in signature.parameters.items()
            if param.default is param.empty and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        ]
        msg = (
            f"{spec} is a factory that needs arguments ({', '.join(needed)}); "
            "name a Workflow, a list of them, a Supervisor, or a factory that takes none"
        )
        raise CommandError(msg) from None


def sqlite_path(dsn: str) -> str:
    """The file of a SQLite DSN, as SQLAlchemy spells it: sqlite:///relative/path, sqlite:////absolute/path."""
    path = dsn.removeprefix("sqlite://").removeprefix("/")
    if not dsn.startswith("sqlite://") or not path:
        msg = f"a SQLite DSN names a file: sqlite:///PATH, got {dsn!r}"
        raise CommandError(msg)
    return path
