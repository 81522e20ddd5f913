"""The benchmark fleet's workflow and adapters (shared by the node script and the driver)."""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler

SHARDS = 8  # per step: enough roles for several nodes to share


class Step(enum.IntEnum):
    """The benchmark workflow's statuses."""

    STARTED = 1
    FIRST = 2
    SECOND = 3
    DONE = 4


@dataclasses.dataclass
class Job:
    """A small object, like a typical run's."""

    id: str = ""
    steps: int = 0


def _busy(seconds: float) -> None:
    """Pure-Python work for ``seconds`` (holds the GIL, as CPU-bound step code does)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def builder(work: float) -> af.Builder[Job, Step]:
    """STARTED -> FIRST -> SECOND -> DONE, ``SHARDS`` shards each, every step ``work`` seconds of CPU."""

    def step(to: Step) -> Any:
        def run(r: af.Run[Job, Step]) -> Step:
            if work:
                _busy(work)
            r.object.steps += 1
            return to

        return run

    b = af.Builder("fleet-bench", Job, Step)
    for frm, to in ((Step.STARTED, Step.FIRST), (Step.FIRST, Step.SECOND), (Step.SECOND, Step.DONE)):
        b.add_step(frm, step(to), to).with_options(parallel_count=SHARDS)
    return b


def adapters_for(args: list[str], *, shared_roles: bool) -> tuple[Any, Any, Any]:
    """(streamer, store, role scheduler) on ``postgres DSN SCHEMA`` or ``sqlite PATH``."""
    if args[0] == "postgres":
        from actorflow.adapters.postgres import (  # noqa: PLC0415 - needs the postgres extra
            PostgresEventStreamer,
            PostgresRecordStore,
            PostgresRoleScheduler,
        )

        dsn, schema = args[1], args[2]
        roles = PostgresRoleScheduler(dsn, schema=schema) if shared_roles else MemoryRoleScheduler()
        return PostgresEventStreamer(dsn, schema=schema), PostgresRecordStore(dsn, schema=schema), roles
    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteRoleScheduler  # noqa: PLC0415

    path = args[1]
    roles = SqliteRoleScheduler(path) if shared_roles else MemoryRoleScheduler()
    return SqliteEventStreamer(path), SqliteRecordStore(path), roles
