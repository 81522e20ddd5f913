"""Run-state hooks: on_pause, on_cancel and on_complete receive the run as a TypedRecord."""

from __future__ import annotations

import dataclasses
import json
import queue
from collections.abc import Callable

import actorflow as af
from tests.model import Order, Status
from tests.waiting import HANG


def _hooked(on: str, received: queue.Queue[af.TypedRecord[Order, Status]], *, fail_first: bool = False):
    """STARTED -> DONE with one hook (``pause``, ``cancel`` or ``complete``) putting records on a queue."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    attempts: list[str] = []

    def hook(record: af.TypedRecord[Order, Status]) -> None:
        attempts.append(record.run_id)
        if fail_first and len(attempts) == 1:
            msg = "notification service down"
            raise RuntimeError(msg)
        received.put(record)

    getattr(b, f"on_{on}")(hook)
    return b, attempts


def test_on_complete_receives_the_completed_run(start):
    """on_complete gets a TypedRecord: decoded object, the user's status enum, COMPLETED."""
    received: queue.Queue[af.TypedRecord[Order, Status]] = queue.Queue()
    b, _ = _hooked("complete", received)
    wf = start(b)
    run_id = wf.trigger("o-1", Order(id="o-1", amount=5))
    record = received.get(timeout=HANG)
    assert isinstance(record, af.TypedRecord)
    assert record.run_id == run_id
    assert record.status is Status.DONE
    assert record.object == Order(id="o-1", amount=5)
    assert record.run_state is af.RunState.COMPLETED


def test_on_pause_receives_a_run_paused_through_the_workflow(build):
    """wf.pause(run_id, reason) fires on_pause with the paused run and its reason."""
    received: queue.Queue[af.TypedRecord[Order, Status]] = queue.Queue()
    b, _ = _hooked("pause", received)
    wf = build(b, pause_retry=None)
    run_id = wf.trigger("o-1")  # at STARTED; not running yet, so the step cannot move it first
    wf.pause(run_id, "manual check")
    wf.run()
    record = received.get(timeout=HANG)
    assert (record.run_id, record.run_state) == (run_id, af.RunState.PAUSED)
    assert record.meta.run_state_reason == "manual check"
    assert record.status is Status.STARTED


def test_on_cancel_receives_a_run_cancelled_through_the_workflow(build):
    """wf.cancel(run_id, reason) fires on_cancel with the cancelled run."""
    received: queue.Queue[af.TypedRecord[Order, Status]] = queue.Queue()
    b, _ = _hooked("cancel", received)
    wf = build(b)
    run_id = wf.trigger("o-1")
    wf.pause(run_id, "manual check")
    wf.cancel(run_id, "customer left")
    wf.run()
    record = received.get(timeout=HANG)
    assert (record.run_id, record.run_state) == (run_id, af.RunState.CANCELLED)
    assert record.meta.run_state_reason == "customer left"


def test_a_raising_hook_is_retried(start):
    """A hook that raises is called again after the back-off until it succeeds."""
    received: queue.Queue[af.TypedRecord[Order, Status]] = queue.Queue()
    b, attempts = _hooked("complete", received, fail_first=True)
    wf = start(b)
    run_id = wf.trigger("o-1")
    assert received.get(timeout=HANG).run_id == run_id
    assert attempts == [run_id, run_id]


def test_hooks_fire_once_per_run_state_change(start, poll_until):
    """Each completed run fires on_complete once."""
    received: queue.Queue[af.TypedRecord[Order, Status]] = queue.Queue()
    b, attempts = _hooked("complete", received)
    wf = start(b)
    run_ids = [wf.trigger(f"o-{i}") for i in range(5)]
    got = sorted(received.get(timeout=HANG).run_id for _ in run_ids)
    assert got == sorted(run_ids)
    assert sorted(attempts) == sorted(run_ids)


def _strict_codec() -> tuple[Callable[[Order], bytes], Callable[[bytes], Order]]:
    """A user's codec whose decode rejects orders with a negative amount (with a ValueError)."""

    def decode(data: bytes) -> Order:
        order = Order(**json.loads(data))
        if order.amount < 0:
            msg = f"negative amount: {order.amount}"
            raise ValueError(msg)
        return order

    return (lambda order: json.dumps(dataclasses.asdict(order)).encode(), decode)


def test_a_run_whose_object_does_not_decode_does_not_block_the_hook(start, poll_until, run_state_of):
    """A hook event whose run the codec cannot decode is skipped; later runs' hooks still fire."""
    received: queue.Queue[af.TypedRecord[Order, Status]] = queue.Queue()
    b = af.Builder("orders", Order, Status, codec=_strict_codec())

    def charge(run: af.Run[Order, Status]) -> Status:
        if run.foreign_id == "refund":
            run.object.amount = -5  # encodes fine; the next step cannot decode it
            return Status.CHARGED
        return run.pause("manual check")

    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.DONE, Status.DONE).with_options(pause_after_err_count=1)
    b.on_pause(received.put)
    wf = start(b, pause_retry=None)
    refund = wf.trigger("refund")
    poll_until(lambda: run_state_of(wf, refund) is af.RunState.PAUSED, what="the refund's auto-pause")
    later = wf.trigger("later")
    record = received.get(timeout=HANG)
    if record.run_id != later:  # the undecodable run is skipped, never handed over
        record = received.get(timeout=HANG)
    assert record.run_id == later
