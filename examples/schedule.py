"""Schedules: trigger a run on a cron spec while the workflow runs.

``wf.schedule("hourly-report", "@every 1h")`` triggers a run of the foreign id
"hourly-report" every hour (five-field cron specs such as ``"0 * * * *"`` and descriptors
such as ``"@daily"`` work too). The first slot is counted from the latest run of that
foreign id, and a slot is skipped while the previous run is still going.

The example moves an ``af.FakeClock`` forward an hour at a time, so it does not wait in
real time, and collects each finished report through an ``on_complete`` hook.

Run it with ``python examples/schedule.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import queue
import sys
from datetime import timedelta

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

REPORT = "hourly-report"


class Status(enum.IntEnum):
    REQUESTED = 1
    GENERATED = 2
    SENT = 3


@dataclasses.dataclass
class Report:
    period_end: str = ""
    recipients: list[str] = dataclasses.field(default_factory=list)


def generate(run: af.Run[Report, Status]) -> Status:
    # created_at comes from the workflow's clock: here, the fake one.
    run.object.period_end = f"{run.created_at:%H:%M}"
    return Status.GENERATED


def send(run: af.Run[Report, Status]) -> Status:
    run.object.recipients = ["ops@example.com"]
    return Status.SENT


def main() -> int:
    clock = af.FakeClock()  # 2024-01-01 00:00 UTC until advanced
    finished: queue.Queue[af.TypedRecord[Report, Status]] = queue.Queue()

    b = af.Builder("reports", Report, Status)
    b.add_step(Status.REQUESTED, generate, Status.GENERATED)
    b.add_step(Status.GENERATED, send, Status.SENT)
    b.on_complete(finished.put)  # called with each run that completes
    wf = b.build(MemoryEventStreamer(clock=clock), MemoryRecordStore(), MemoryRoleScheduler(), clock=clock)

    def next_report() -> af.TypedRecord[Report, Status]:
        record = finished.get(timeout=10)  # blocks until the hook hands over a finished run
        print(f"  {clock.now():%H:%M} report for {record.object.period_end} sent (run {record.run_id[:8]})")
        return record

    wf.run()
    try:
        # Send a report at deploy time; the schedule counts its first slot from this run.
        wf.trigger(REPORT)
        next_report()

        wf.schedule(REPORT, "@every 1h")  # returns at once; the workflow's schedule actor fires it

        # Each hour that passes fires the schedule once: one run per slot.
        for _ in range(3):
            clock.advance(timedelta(hours=1))
            next_report()

        # Slots missed while nothing ran the schedule (here: 3 hours at once) fire once, not three times.
        clock.advance(timedelta(hours=3))
        next_report()
    finally:
        wf.stop()

    runs = wf.record_store.list(wf.name, limit=100)
    created = [f"{r.created_at:%H:%M}" for r in runs]
    print(f"runs of {REPORT!r} created at: {', '.join(created)}")
    ok = created == ["00:00", "01:00", "02:00", "03:00", "06:00"] and all(r.status == Status.SENT for r in runs)
    print("schedule: OK" if ok else "schedule: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
