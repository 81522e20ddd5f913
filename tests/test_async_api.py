"""The asyncio face of a workflow: ``*_async`` twins and ``async with Supervisor(...)``, none blocking the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from tests.model import FAST, Order, Status

pytestmark = pytest.mark.timeout(120)


def _builder() -> af.Builder[Order, Status]:
    async def charge(run: af.Run[Order, Status]) -> Status:
        await asyncio.sleep(0)
        return Status.CHARGED

    b = af.Builder("async-api", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    return b


def _memory_workflow() -> af.Workflow[Order, Status]:
    return _builder().build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), defaults=FAST)


def test_every_twin_works_inside_an_async_supervisor():
    wf = _memory_workflow()

    async def main() -> None:
        async with af.Supervisor([wf]) as supervisor:
            assert supervisor.running
            run_id = await wf.trigger_async("a-1", Order(id="a-1"))
            assert (await wf.await_status_async("a-1", run_id, Status.AWAITING, timeout=10)).status == Status.AWAITING
            await wf.callback_async("a-1", Status.AWAITING, b"{}")
            assert (await wf.await_status_async("a-1", run_id, Status.APPROVED, timeout=10)).run_state.finished

            other = await wf.trigger_async("a-2", Order(id="a-2"), start_at=Status.AWAITING)
            assert (await wf.pause_async(other, "look")).run_state is af.RunState.PAUSED
            assert (await wf.resume_async(other)).run_state is af.RunState.RUNNING
            await wf.pause_async(other)
            assert (await wf.cancel_async(other)).run_state is af.RunState.CANCELLED
            assert (await wf.delete_data_async(other)).run_state is af.RunState.REQUESTED_DATA_DELETED
            many = await wf.trigger_many_async(["m-1", ("m-2", Order(id="m-2"))])
            assert len(many) == 2
            with pytest.raises(af.AwaitTimeout):
                await wf.await_status_async("m-1", many[0], Status.APPROVED, timeout=0.2)
        assert not supervisor.running

    asyncio.run(main())


def test_an_async_handler_stays_responsive_while_1000_runs_are_triggered_and_awaited():
    """No store call runs on the caller's loop while 1,000 runs are triggered and awaited.

    That is what keeps the loop responsive; the loop's worst stall, measured by a 5 ms
    ticker, is printed (a figure, not asserted: the machine's load decides it).
    """
    wf = _memory_workflow()
    runs = 1000
    store = wf.record_store
    on_threads: set[int] = set()

    def recorded(name: str) -> None:
        original = getattr(store, name)

        def call(*args: object, **kwargs: object) -> object:
            on_threads.add(threading.get_ident())
            return original(*args, **kwargs)

        setattr(store, name, call)

    for name in ("store", "store_many", "lookup", "lookup_many", "latest", "snapshots"):
        if hasattr(store, name):
            recorded(name)

    loop_threads: list[int] = []

    async def main() -> tuple[float, float, int]:
        loop_threads.append(threading.get_ident())
        stalls: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                stalls.append(now - last - 0.005)
                last = now

        async with af.Supervisor([wf]):
            tick = asyncio.create_task(ticker())
            started = time.perf_counter()
            threads = 0

            async def one(i: int) -> None:
                nonlocal threads
                run_id = await wf.trigger_async(f"r-{i}", Order(id=f"r-{i}"))
                await wf.await_status_async(f"r-{i}", run_id, Status.AWAITING, timeout=60)
                threads = max(threads, threading.active_count())

            await asyncio.gather(*(one(i) for i in range(runs)))
            took = time.perf_counter() - started
            done.set()
            await tick
        return max(stalls), took, threads

    worst, took, threads = asyncio.run(main())
    print(f"{runs} runs in {took:.2f}s; worst loop stall {worst * 1000:.1f} ms; at most {threads} threads")
    assert on_threads, "the store was never called"
    assert loop_threads[0] not in on_threads, "a store call ran on the caller's event loop"
    assert threads < 100  # no thread per waiting call


def test_an_async_supervisor_on_sqlite_starts_and_stops_without_blocking_the_loop(tmp_path: Path, opened):
    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore

    path = tmp_path / "a.db"
    wf = _builder().build(
        opened(SqliteEventStreamer(path)), opened(SqliteRecordStore(path)), MemoryRoleScheduler(), defaults=FAST
    )

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        tick = asyncio.create_task(ticker())
        async with af.Supervisor([wf]):
            run_id = await wf.trigger_async("s-1", Order(id="s-1"))
            await wf.await_status_async("s-1", run_id, Status.AWAITING, timeout=15)
        tick.cancel()
        return ticks

    assert asyncio.run(main()) > 0  # the ticker ran while the supervisor started, worked and stopped
