"""Callbacks: a run waits for an outside party (a webhook, a person) to decide.

A loan application is checked, then parks at AWAITING_APPROVAL. Nothing happens until
someone calls ``wf.callback(foreign_id, Status.AWAITING_APPROVAL, payload)``; the callback
function reads the payload (JSON here) and picks APPROVED or REJECTED.

Run it with ``python examples/callback.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


class Status(enum.IntEnum):
    SUBMITTED = 1
    AWAITING_APPROVAL = 2
    APPROVED = 3
    REJECTED = 4


@dataclasses.dataclass
class Application:
    applicant: str = ""
    amount: int = 0
    reviewer: str = ""
    decision: str = ""


def check(run: af.Run[Application, Status]) -> Status:
    """An ordinary step: check the application, then wait for a human."""
    print(f"  [{run.foreign_id}] checked: {run.object.applicant} asks for {run.object.amount}")
    return Status.AWAITING_APPROVAL


def on_decision(run: af.Run[Application, Status], payload: bytes) -> Status:
    """Called by ``wf.callback``: the payload is whatever the caller sent (bytes)."""
    decision = json.loads(payload)
    run.object.reviewer = decision.get("reviewer", "")
    if decision.get("approved"):
        run.object.decision = "approved"
        return Status.APPROVED
    run.object.decision = f"rejected: {decision.get('reason', 'no reason given')}"
    return Status.REJECTED


def build_workflow() -> af.Workflow[Application, Status]:
    b = af.Builder("loan-approval", Application, Status)
    b.add_step(Status.SUBMITTED, check, Status.AWAITING_APPROVAL)
    # add_callback(status the run waits at, function, statuses it may move to)
    b.add_callback(Status.AWAITING_APPROVAL, on_decision, Status.APPROVED, Status.REJECTED)
    return b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


def main() -> int:
    wf = build_workflow()
    wf.run()
    try:
        alice = wf.trigger("loan-alice", initial_value=Application(applicant="Alice", amount=1000))
        bob = wf.trigger("loan-bob", initial_value=Application(applicant="Bob", amount=250_000))

        # Both runs stop at AWAITING_APPROVAL until someone calls back.
        wf.await_status("loan-alice", alice, Status.AWAITING_APPROVAL, timeout=10)
        wf.await_status("loan-bob", bob, Status.AWAITING_APPROVAL, timeout=10)
        print("both applications await approval")

        # In a service this is your webhook handler or admin endpoint.
        wf.callback("loan-alice", Status.AWAITING_APPROVAL, b'{"approved": true, "reviewer": "carol"}')
        wf.callback(
            "loan-bob",
            Status.AWAITING_APPROVAL,
            json.dumps({"approved": False, "reviewer": "dave", "reason": "amount too high"}).encode(),
        )
        # A callback for a run that is no longer at that status changes nothing.
        wf.callback("loan-alice", Status.AWAITING_APPROVAL, b'{"approved": false}')

        approved = wf.await_status("loan-alice", alice, Status.APPROVED, timeout=10)
        rejected = wf.await_status("loan-bob", bob, Status.REJECTED, timeout=10)
        latest_alice = wf.record_store.latest(wf.name, "loan-alice")
    finally:
        wf.stop()

    print(f"loan-alice: {approved.status.name} by {approved.object.reviewer}")
    print(f"loan-bob: {rejected.status.name} by {rejected.object.reviewer} ({rejected.object.decision})")
    ok = (
        approved.object.decision == "approved"
        and rejected.object.decision == "rejected: amount too high"
        and latest_alice.status == Status.APPROVED  # the late callback was ignored
    )
    print("callback: OK" if ok else "callback: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
