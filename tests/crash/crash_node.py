"""A node for the crash test: a 3-step workflow run until killed, or until every run is done.

Usage: python crash_node.py sqlite PATH RUNS [--trigger] [--poison FOREIGN_ID [--pause-after N]] [--io]
       python crash_node.py postgres DSN SCHEMA RUNS [--trigger] [--poison FOREIGN_ID [--pause-after N]] [--io]
       python crash_node.py mysql DSN RUNS [--trigger] [--poison FOREIGN_ID [--pause-after N]] [--io]

With --trigger it first starts RUNS runs (foreign ids run-0 ... run-<RUNS-1>). It then runs
the workflow and exits 0 once every run is Completed (or, with --poison, Paused: that run's
first step kills the whole process, exit code 3, every time it runs; the first step pauses
a run after N errors, 3 unless --pause-after says otherwise). Progress is read
through the record store's own API, so the same script serves every backend. With --io
every step first waits 5 ms, as an I/O call would: the shards run their steps on worker
threads, many at once, and the kill lands with a window of steps in hand.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.model
from tests.model import Item, Stage, counting_step, three_steps


def adapters(argv: list[str]) -> tuple[Any, Any, int]:
    """The streamer, the record store and the run count named on the command line."""
    if argv[0] == "sqlite":
        from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore

        return SqliteEventStreamer(argv[1]), SqliteRecordStore(argv[1]), int(argv[2])
    if argv[0] == "mysql":
        from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore

        return MysqlEventStreamer(argv[1]), MysqlRecordStore(argv[1]), int(argv[2])
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore

    dsn, schema = argv[1], argv[2]
    return PostgresEventStreamer(dsn, schema=schema), PostgresRecordStore(dsn, schema=schema), int(argv[3])


def completed(store: Any, runs: int) -> int:
    """How many runs of the crash workflow are Completed (or Paused: given up on)."""
    done = af.RecordFilter(run_states=(af.RunState.COMPLETED, af.RunState.PAUSED))
    return len(store.list("crash", limit=runs + 1, filter=done))


def _poisoned(foreign_id: str) -> Any:
    first = counting_step(Stage.FIRST)

    def step(run: af.Run[Item, Stage]) -> Stage:
        if run.foreign_id == foreign_id:
            os._exit(3)  # the process dies: no exception for the engine to count
        return first(run)  # type: ignore[no-any-return, operator]

    return step


class _Waiting(list[tuple[str, Stage]]):
    """The steps' call log, kept as a wait: each step waits as an I/O call of ``IO_WAIT`` would."""

    def append(self, item: tuple[str, Stage]) -> None:
        threading.Event().wait(IO_WAIT)


IO_WAIT = 0.005


def _async_three_steps() -> af.Builder[Item, Stage]:
    """`three_steps` with ``async def`` steps, each awaiting ``IO_WAIT`` as an async I/O call would."""

    def step(to: Stage) -> Any:
        async def run(r: af.Run[Item, Stage]) -> Stage:
            await asyncio.sleep(IO_WAIT)
            r.object.steps += 1
            return to

        return run

    b = af.Builder("crash", Item, Stage)
    b.add_step(Stage.STARTED, step(Stage.FIRST), Stage.FIRST)
    b.add_step(Stage.FIRST, step(Stage.SECOND), Stage.SECOND).with_options(parallel_count=2)
    b.add_step(Stage.SECOND, step(Stage.DONE), Stage.DONE)
    return b


def main() -> int:
    streamer, store, runs = adapters(sys.argv[1:])
    if "--poison" in sys.argv:
        poisoned = _poisoned(sys.argv[sys.argv.index("--poison") + 1])
        pause_after = int(sys.argv[sys.argv.index("--pause-after") + 1]) if "--pause-after" in sys.argv else 3
        b = three_steps("crash", parallel=2, first=poisoned, first_pause_after=pause_after)
    elif "--async" in sys.argv:  # async def steps that await IO_WAIT: many in hand on the loop at the kill
        b = _async_three_steps()
    else:
        b = three_steps("crash", parallel=2, calls=_Waiting() if "--io" in sys.argv else None)
    wf = b.build(streamer, store, MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.05))
    if "--trigger" in sys.argv:
        for i in range(runs):
            wf.trigger(f"run-{i}")
    wf.run()
    print("running", flush=True)
    finished = threading.Event()
    while not finished.wait(0.05):
        if completed(store, runs) >= runs:
            finished.set()
    wf.stop()
    streamer.close()
    store.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
