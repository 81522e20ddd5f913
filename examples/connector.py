"""Connectors: start runs from an external event stream.

A connector consumes a stream the workflow does not own (Kafka topic, another service's
events...) and calls your function with each event; the function usually triggers a run.
``MemoryConnector`` plays the external stream here. With ``parallel_count=2`` the
connector runs as two shards, each handling the events whose foreign id hashes to it.

Run it with ``python examples/connector.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import sys

import actorflow as af
from actorflow.adapters.memory import MemoryConnector, MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.testing import wait_for


class Status(enum.IntEnum):
    RECEIVED = 1
    WELCOMED = 2


@dataclasses.dataclass
class Signup:
    email: str = ""
    plan: str = ""
    welcome_sent: bool = False


def send_welcome(run: af.Run[Signup, Status]) -> Status:
    print(f"  [{run.foreign_id}] welcome mail to {run.object.email} ({run.object.plan} plan)")
    run.object.welcome_sent = True
    return Status.WELCOMED


SHARDS = 2


def on_user_event(wf: af.Workflow[Signup, Status], event: af.ConnectorEvent) -> None:
    """Called once per external event: turn it into a run of this workflow.

    If this raises, the event is retried after ``err_backoff`` (it is not lost), and an
    event can be delivered again after a restart, so make it idempotent: a trigger for a
    foreign id whose run is still in progress raises ``af.WorkflowInProgress``; skip it.
    """
    if event.type != "user.signed_up":
        return  # not interesting to this workflow
    signup = Signup(email=event.headers["email"], plan=event.headers.get("plan", "free"))
    with contextlib.suppress(af.WorkflowInProgress):  # a redelivered event: its run is on its way
        wf.trigger(event.foreign_id, initial_value=signup)


def main() -> int:
    # The "external" stream, with a few events already in it.
    stream = MemoryConnector(
        [
            af.ConnectorEvent(id="1", foreign_id="user-1", type="user.signed_up", headers={"email": "ada@example.com"}),
            af.ConnectorEvent(
                id="2", foreign_id="user-2", type="user.signed_up", headers={"email": "bob@example.com", "plan": "pro"}
            ),
            af.ConnectorEvent(id="3", foreign_id="user-1", type="user.logged_in"),
            af.ConnectorEvent(id="4", foreign_id="user-3", type="user.signed_up", headers={"email": "cy@example.com"}),
        ]
    )

    b = af.Builder("welcome-mail", Signup, Status)
    b.add_step(Status.RECEIVED, send_welcome, Status.WELCOMED)
    b.add_connector("user-events", stream, on_user_event).with_options(parallel_count=SHARDS)
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())

    wf.run()
    try:
        # Events can keep arriving while the workflow runs.
        stream.add(
            af.ConnectorEvent(id="5", foreign_id="user-4", type="user.signed_up", headers={"email": "dee@example.com"})
        )
        users = ["user-1", "user-2", "user-3", "user-4"]
        welcomed = []
        for user in users:
            # The run is started by the connector, so find its id with the testing helper.
            run = wait_for(wf, user, lambda r: r.status == Status.WELCOMED, timeout=10)
            welcomed.append(run)
        run_count = len(wf.record_store.list(wf.name, limit=100))
    finally:
        wf.stop()

    for run in welcomed:
        # Events are spread over the shards by a hash of their foreign id (af.shard_of).
        shard = af.shard_of(run.foreign_id, SHARDS) + 1
        print(f"{run.foreign_id}: {run.status.name}, mailed: {run.object.welcome_sent} (shard {shard} of {SHARDS})")
    print(f"{run_count} runs for {len(users)} signups: the login event started none")
    ok = run_count == len(users) and all(r.object.welcome_sent for r in welcomed)
    print("connector: OK" if ok else "connector: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
