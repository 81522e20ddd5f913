"""The shortest end-to-end path: trigger, two steps, await completion."""

from __future__ import annotations

import dataclasses
import enum

import actorflow as af


class Status(enum.IntEnum):
    STARTED = 1
    CHARGED = 2
    DONE = 3


@dataclasses.dataclass
class Order:
    id: str = ""
    amount: int = 0


def test_a_run_goes_through_every_step(stack):
    b = af.Builder("orders", Order, Status)

    @b.step(Status.STARTED, Status.CHARGED)
    def charge(run: af.Run[Order, Status]) -> Status:
        run.object.amount += 1
        return Status.CHARGED

    b.add_step(Status.CHARGED, lambda run: Status.DONE, Status.DONE)
    wf = stack.build(b)
    wf.run()
    try:
        run_id = wf.trigger("o-1", Order("o-1", 10))
        run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    finally:
        wf.stop()
    assert run.object == Order("o-1", 11)
    assert run.run_state is af.RunState.COMPLETED
    assert run.meta.version == 3
