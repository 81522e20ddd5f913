"""``async def`` steps, callbacks, timeouts and hooks, on every adapter stack, mixed with sync ones.

Async steps run on the engine's own event loop, many at once within a shard's
``max_in_flight`` window (no thread each), with the guarantees of sync steps: group
commit, errors counted and retried, step timeouts, each transition stored once.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

import actorflow as af
from actorflow.testing import await_timeout_insert
from tests.model import Calls, Order, Status

pytestmark = pytest.mark.timeout(60)


async def _charge(run: af.Run[Order, Status]) -> Status:
    await asyncio.sleep(0)  # gives the loop away, as a real await on I/O would
    run.object.notes.append("charged")
    return Status.CHARGED


def _ship(run: af.Run[Order, Status]) -> Status:  # a sync step beside the async ones
    run.object.notes.append("shipped")
    return Status.SHIPPED


async def _finish(run: af.Run[Order, Status]) -> Status:
    await asyncio.sleep(0)
    run.object.notes.append("finished")
    return Status.DONE


def _mixed() -> af.Builder[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, _charge, Status.CHARGED)
    b.add_step(Status.CHARGED, _ship, Status.SHIPPED)
    b.add_step(Status.SHIPPED, _finish, Status.DONE)
    return b


def test_async_and_sync_steps_mixed_run_every_run_to_the_end(start):
    wf = start(_mixed())
    ids = {f"o-{i}": wf.trigger(f"o-{i}", Order(id=f"o-{i}")) for i in range(5)}
    for foreign_id, run_id in ids.items():
        run = wf.await_status(foreign_id, run_id, Status.DONE, timeout=15)
        assert run.object.notes == ["charged", "shipped", "finished"]
        assert run.meta.version == 4  # each transition stored once


class _Gate:
    """Opens once ``count`` steps are waiting at it at the same time: only steps that overlap get through."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.waiting = 0
        self.peak = 0
        self.threads: set[str] = set()
        self._event: asyncio.Event | None = None

    async def wait(self) -> None:
        if self._event is None:
            self._event = asyncio.Event()  # made on the loop the steps run on
        self.threads.add(threading.current_thread().name)
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        if self.waiting >= self.count:
            self._event.set()
        await self._event.wait()
        self.waiting -= 1


def test_async_steps_of_one_shard_overlap_on_the_engines_loop(start):
    """Twelve runs' steps wait for each other: they pass only if at least twelve run at once, with default options."""
    gate = _Gate(12)

    async def charge(run: af.Run[Order, Status]) -> Status:
        await gate.wait()
        return Status.CHARGED

    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    wf = start(b)
    ids = {f"g-{i}": wf.trigger(f"g-{i}", Order(id=f"g-{i}")) for i in range(12)}
    for foreign_id, run_id in ids.items():
        wf.await_status(foreign_id, run_id, Status.CHARGED, timeout=20)
    assert gate.peak >= 12
    assert len(gate.threads) == 1  # one loop thread, not a thread per step
    assert next(iter(gate.threads)).endswith("-asyncio")


def test_a_failing_async_step_is_retried_then_succeeds_and_another_is_paused(start, poll_until, run_state_of):
    calls = Calls()

    async def charge(run: af.Run[Order, Status]) -> Status:
        count = calls.add("charge", run.run_id)
        await asyncio.sleep(0)
        if run.foreign_id == "never" or count < 3:
            raise RuntimeError(f"payment provider down (attempt {count})")
        return Status.CHARGED

    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED).with_options(pause_after_err_count=3)
    wf = start(b, pause_retry=None)
    ok = wf.trigger("ok", Order(id="ok"))
    never = wf.trigger("never", Order(id="never"))
    assert wf.await_status("ok", ok, Status.CHARGED, timeout=15).meta.version == 2
    assert calls.count("charge", ok) == 3
    poll_until(lambda: run_state_of(wf, never) is af.RunState.PAUSED, what="the failing run's pause")


def test_an_async_step_over_its_step_timeout_is_cancelled_and_counted_as_an_error(start, poll_until, run_state_of):
    cancelled = threading.Event()

    async def charge(run: af.Run[Order, Status]) -> Status:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Status.CHARGED

    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED).with_options(step_timeout=0.05, pause_after_err_count=1)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("slow", Order(id="slow"))
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause after the step timeout")
    assert cancelled.is_set()  # the coroutine was cancelled, not left running


def test_async_callback_timeout_and_hook(start, clock, poll_until):
    completed: list[str] = []

    async def approve(run: af.Run[Order, Status], payload: bytes) -> Status:
        await asyncio.sleep(0)
        run.object.notes.append(payload.decode())
        return Status.APPROVED

    async def expire(run: af.Run[Order, Status], now: Any) -> Status:
        await asyncio.sleep(0)
        return Status.EXPIRED

    async def on_complete(record: af.TypedRecord[Order, Status]) -> None:
        await asyncio.sleep(0)
        completed.append(record.foreign_id)

    async def charge_to_awaiting(run: af.Run[Order, Status]) -> Status:
        return Status.AWAITING

    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, charge_to_awaiting, Status.AWAITING)
    b.add_callback(Status.AWAITING, approve, Status.APPROVED)
    b.add_timeout(Status.AWAITING, af.duration_timer(timedelta(minutes=30)), expire, Status.EXPIRED)
    b.on_complete(on_complete)
    wf = start(b)

    called = wf.trigger("cb", Order(id="cb"))
    wf.await_status("cb", called, Status.AWAITING, timeout=15)
    wf.callback("cb", Status.AWAITING, b"yes")
    assert wf.await_status("cb", called, Status.APPROVED, timeout=15).object.notes == ["yes"]

    timed = wf.trigger("to", Order(id="to"))
    await_timeout_insert(wf, "to", timed, Status.AWAITING)
    clock.advance(timedelta(minutes=31))
    wf.await_status("to", timed, Status.EXPIRED, timeout=15)
    poll_until(lambda: sorted(completed) == ["cb", "to"], what="the async on_complete hook for both runs")


def test_an_async_callback_works_in_a_process_that_only_calls_back(build_shared, poll_until):
    """A workflow object never run (a web service's) runs an async callback on its own thread's loop, leaving no thread."""

    async def approve(run: af.Run[Order, Status], payload: bytes) -> Status:
        await asyncio.sleep(0)
        return Status.APPROVED

    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, approve, Status.APPROVED)
    service, node = build_shared(b)
    node.run()
    run_id = service.trigger("svc", Order(id="svc"))
    service.await_status("svc", run_id, Status.AWAITING, timeout=15)
    before = set(threading.enumerate())
    service.callback("svc", Status.AWAITING, b"ok")
    assert service.await_status("svc", run_id, Status.APPROVED, timeout=15).status == Status.APPROVED
    assert not [t for t in threading.enumerate() if t not in before and t.name.endswith("-asyncio")]
