"""Timeouts: a payment request expires after 30 minutes unless it is paid.

When a run reaches AWAITING_PAYMENT, ``af.duration_timer(30 minutes)`` stores a timeout
for it. If the payment callback arrives first, the run moves on and the timeout is
dropped; otherwise the timeout function moves the run to EXPIRED.

The example uses ``af.FakeClock`` (passed to ``build(clock=...)`` and to the event
streamer) and moves it forward by 31 minutes, so nothing waits in real time. In
production leave ``clock`` out: the system clock is the default.

Run it with ``python examples/timeout.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from datetime import datetime, timedelta

import actorflow as af
from actorflow.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from actorflow.testing import await_timeout_insert


class Status(enum.IntEnum):
    CREATED = 1
    AWAITING_PAYMENT = 2
    PAID = 3
    EXPIRED = 4


@dataclasses.dataclass
class Payment:
    reference: str = ""
    amount: int = 0
    outcome: str = ""


def request_payment(run: af.Run[Payment, Status]) -> Status:
    print(f"  [{run.foreign_id}] payment of {run.object.amount} requested")
    return Status.AWAITING_PAYMENT


def on_paid(run: af.Run[Payment, Status], payload: bytes) -> Status:
    run.object.outcome = f"paid ({payload.decode()})"
    return Status.PAID


def on_expired(run: af.Run[Payment, Status], now: datetime) -> Status:
    """The timeout function: gets the run and the (clock's) time it fired."""
    run.object.outcome = f"expired at {now:%H:%M}"
    return Status.EXPIRED


def build_workflow(clock: af.Clock) -> af.Workflow[Payment, Status]:
    b = af.Builder("payments", Payment, Status)
    b.add_step(Status.CREATED, request_payment, Status.AWAITING_PAYMENT)
    b.add_callback(Status.AWAITING_PAYMENT, on_paid, Status.PAID)
    # add_timeout(status, timer, function, statuses it may move to)
    b.add_timeout(Status.AWAITING_PAYMENT, af.duration_timer(timedelta(minutes=30)), on_expired, Status.EXPIRED)
    return b.build(
        MemoryEventStreamer(clock=clock),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),  # a workflow with timeouts needs a timeout store
        clock=clock,
    )


def main() -> int:
    clock = af.FakeClock()  # starts at 2024-01-01 00:00 UTC and moves only when told
    wf = build_workflow(clock)
    wf.run()
    try:
        paid_id = wf.trigger("pay-1", initial_value=Payment(reference="pay-1", amount=500))
        lapsed_id = wf.trigger("pay-2", initial_value=Payment(reference="pay-2", amount=700))

        # Wait until both timeouts are stored, so moving the clock cannot race the inserter.
        for foreign_id, run_id in (("pay-1", paid_id), ("pay-2", lapsed_id)):
            timeout = await_timeout_insert(wf, foreign_id, run_id, Status.AWAITING_PAYMENT)
            print(f"  [{foreign_id}] timeout set to expire at {timeout.expire_at:%H:%M}")

        # pay-1 is paid in time.
        wf.callback("pay-1", Status.AWAITING_PAYMENT, b"card ending 4242")
        paid = wf.await_status("pay-1", paid_id, Status.PAID, timeout=10)

        # 31 minutes "pass": pay-2's timeout fires; pay-1's is dropped (the run moved on).
        clock.advance(timedelta(minutes=31))
        print(f"clock advanced to {clock.now():%H:%M}")
        expired = wf.await_status("pay-2", lapsed_id, Status.EXPIRED, timeout=10)
        paid_now = wf.record_store.lookup(paid_id)
    finally:
        wf.stop()

    print(f"pay-1: {paid.status.name}: {paid.object.outcome}")
    print(f"pay-2: {expired.status.name}: {expired.object.outcome}")
    ok = paid_now.status == Status.PAID and expired.object.outcome == "expired at 00:31"
    print("timeout: OK" if ok else "timeout: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
