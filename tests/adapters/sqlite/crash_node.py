"""A node for the crash test: a 3-step workflow on SQLite, run until killed or until every run is done.

Usage: python crash_node.py PATH RUNS [--trigger]

With --trigger it first starts RUNS runs (foreign ids run-0 ... run-<RUNS-1>). It then runs the
workflow, and exits 0 once every run of the file is Completed.
"""

from __future__ import annotations

import dataclasses
import enum
import sqlite3
import sys
import threading

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore


class Status(enum.IntEnum):
    STARTED = 1
    FIRST = 2
    SECOND = 3
    DONE = 4


@dataclasses.dataclass
class Item:
    steps: int = 0


def _step(to: Status) -> object:
    def step(run: af.Run[Item, Status]) -> Status:
        run.object.steps += 1
        return to

    return step


def main() -> int:
    path, runs = sys.argv[1], int(sys.argv[2])
    b = af.Builder("crash", Item, Status)
    b.add_step(Status.STARTED, _step(Status.FIRST), Status.FIRST)
    b.add_step(Status.FIRST, _step(Status.SECOND), Status.SECOND).with_options(parallel_count=2)
    b.add_step(Status.SECOND, _step(Status.DONE), Status.DONE)
    streamer, store = SqliteEventStreamer(path), SqliteRecordStore(path)
    wf = b.build(streamer, store, MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.05))
    if "--trigger" in sys.argv:
        for i in range(runs):
            wf.trigger(f"run-{i}")
    wf.run()
    print("running", flush=True)
    finished = threading.Event()
    with sqlite3.connect(path) as check:
        while not finished.wait(0.05):
            (done,) = check.execute("SELECT count(*) FROM records WHERE run_state = 5").fetchone()
            if done >= runs:
                finished.set()
    wf.stop()
    streamer.close()
    store.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
