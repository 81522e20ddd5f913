"""A node of a test fleet: a child process running the counting workflow until SIGTERM.

Usage: python fleet_node.py postgres DSN SCHEMA LOG
       python fleet_node.py mysql DSN LOG
       python fleet_node.py sqlite PATH LOG

Every step it runs appends "run_id status" to LOG (after sleeping FLEET_STEP_SECONDS, if set;
one file per node), so the test can tell which node ran what; FLEET_MAX_IN_FLIGHT, if set, is
the workflow's ``max_in_flight``. It claims roles through the database's lease table, serves
/healthz on a free port, prints "ready PORT NODE_ID" once started and "stopped" when
done.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.model

from typing import Any

import actorflow as af
from actorflow._signals import run_until_stopped
from tests.model import Item, Stage, three_steps

WORKFLOW = "fleet"


def noting(log_path: str) -> list[tuple[str, Stage]]:
    """A list whose appends go to ``log_path`` too (the steps note their calls in it)."""
    lock = threading.Lock()
    log = Path(log_path).open("a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the node's life

    pace = float(os.environ.get("FLEET_STEP_SECONDS", "0"))  # what each step takes (a test's backlog lasts)

    class Noted(list[tuple[str, Stage]]):
        def append(self, item: tuple[str, Stage]) -> None:
            if pace:
                time.sleep(pace)  # the step's own work, as an I/O call would take
            with lock:
                log.write(f"{item[0]} {int(item[1])}\n")

    return Noted()


def build(args: list[str]) -> tuple[af.Builder[Item, Stage], tuple[Any, Any, Any, Any], str]:
    """The workflow and its adapters for the backend named by ``args``; the log path."""
    if args[0] == "postgres":
        from actorflow.adapters.postgres import (
            PostgresEventStreamer,
            PostgresRecordStore,
            PostgresRoleScheduler,
            PostgresTimeoutStore,
        )

        dsn, schema, log = args[1], args[2], args[3]
        adapters = (
            PostgresEventStreamer(dsn, schema=schema),
            PostgresRecordStore(dsn, schema=schema),
            PostgresRoleScheduler(dsn, schema=schema),
            PostgresTimeoutStore(dsn, schema=schema),
        )
    elif args[0] == "mysql":
        from actorflow.adapters.mysql import (
            MysqlEventStreamer,
            MysqlRecordStore,
            MysqlRoleScheduler,
            MysqlTimeoutStore,
        )

        dsn, log = args[1], args[2]
        adapters = (
            MysqlEventStreamer(dsn),
            MysqlRecordStore(dsn),
            MysqlRoleScheduler(dsn),
            MysqlTimeoutStore(dsn),
        )
    else:
        from actorflow.adapters.sqlite import (
            SqliteEventStreamer,
            SqliteRecordStore,
            SqliteRoleScheduler,
            SqliteTimeoutStore,
        )

        path, log = args[1], args[2]
        adapters = (
            SqliteEventStreamer(path),
            SqliteRecordStore(path),
            SqliteRoleScheduler(path),
            SqliteTimeoutStore(path),
        )
    return three_steps(WORKFLOW, parallel=6, calls=noting(log)), adapters, log


def main(args: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    builder, (streamer, store, scheduler, timeouts), _ = build(args)
    # FLEET_MAX_IN_FLIGHT: steps a shard runs at once (a test whose backlog must last sets it low).
    in_flight = os.environ.get("FLEET_MAX_IN_FLIGHT")
    defaults = af.Options(max_in_flight=int(in_flight)) if in_flight else None
    wf = builder.build(streamer, store, scheduler, timeout_store=timeouts, defaults=defaults)
    supervisor = af.Supervisor([wf], metrics_port=0)
    run_until_stopped(supervisor, lambda: print(f"ready {supervisor.metrics_port} {supervisor.node_id}", flush=True))
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
