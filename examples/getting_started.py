"""Getting started: the smallest complete workflow.

A task goes through three steps (started -> processed -> reviewed -> completed). Each step
is a plain function that receives the run, may change ``run.object`` and returns the next
status. The engine stores every transition and hands the run to the next step.

Run it with ``python examples/getting_started.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import sys

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


# 1. The statuses a run moves through. 0 is reserved by the engine: start at 1.
class Status(enum.IntEnum):
    STARTED = 1
    PROCESSED = 2
    REVIEWED = 3
    COMPLETED = 4


# 2. The object carried by each run; stored (as JSON by default) with every transition.
@dataclasses.dataclass
class Task:
    name: str = ""
    words: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)


# 3. One function per step: it gets the run and returns the status to move to.
def process(run: af.Run[Task, Status]) -> Status:
    run.object.words = len(run.object.name.split())
    run.object.notes.append("processed")
    return Status.PROCESSED


def review(run: af.Run[Task, Status]) -> Status:
    run.object.notes.append(f"reviewed ({run.object.words} words)")
    return Status.REVIEWED


def complete(run: af.Run[Task, Status]) -> Status:
    run.object.notes.append("completed")
    return Status.COMPLETED


def build_workflow() -> af.Workflow[Task, Status]:
    """Declare the steps, then build on adapters (in memory here: nothing to set up)."""
    b = af.Builder("getting-started", Task, Status)
    # add_step(status it consumes, function, statuses it may move to)
    b.add_step(Status.STARTED, process, Status.PROCESSED)
    b.add_step(Status.PROCESSED, review, Status.REVIEWED)
    b.add_step(Status.REVIEWED, complete, Status.COMPLETED)
    return b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


def main() -> int:
    wf = build_workflow()
    wf.run()  # start the workflow's processes (one actor per step) in the background
    try:
        # Start a run for the foreign id "task-1" (your own id for the thing being processed).
        run_id = wf.trigger("task-1", initial_value=Task(name="write the getting started guide"))
        print(f"triggered run {run_id}")

        # Wait for the run to reach COMPLETED; returns the run as it was there.
        run = wf.await_status("task-1", run_id, Status.COMPLETED, timeout=10)
        print(f"status: {run.status.name}, run state: {run.run_state.name}, version: {run.meta.version}")
        print(f"result: {run.object}")
    finally:
        wf.stop()  # always stop: it joins every actor and thread

    ok = run.run_state is af.RunState.COMPLETED and run.object.notes[-1] == "completed"
    print("getting started: OK" if ok else "getting started: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
