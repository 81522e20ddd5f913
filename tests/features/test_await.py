"""await_status: returns the run as it was at a status it is at, or has been at since triggered."""

from __future__ import annotations

import threading
import time

import pytest

import actorflow as af
from tests.model import Order, Status


def test_await_returns_at_once_when_the_run_is_already_there(start, linear):
    """Awaiting the status a run is at returns immediately."""
    wf = start(linear())
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    began = time.monotonic()
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert time.monotonic() - began < 0.1
    assert run.status is Status.DONE


def test_await_returns_for_a_status_the_run_passed_before_the_call(start, linear):
    """A status the run left before await was called still satisfies it."""
    wf = start(linear())
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    run = wf.await_status("o-1", run_id, Status.CHARGED, timeout=0.5)
    assert run.status is Status.CHARGED


def test_await_returns_the_run_as_it_was_at_that_status(start, linear):
    """The run returned is the version stored at the awaited status, not the latest."""
    wf = start(linear())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    run = wf.await_status("o-1", run_id, Status.CHARGED, timeout=5)
    assert run.meta.version == 2
    assert run.object == Order(id="o-1", amount=1, notes=["charge"])
    assert run.run_state is af.RunState.RUNNING


def test_await_waits_for_a_status_reached_later(build, linear):
    """Awaiting before the run gets there returns once it does."""
    wf = build(linear())
    run_id = wf.trigger("o-1")
    found: list[af.Run[Order, Status]] = []
    waiting = threading.Thread(target=lambda: found.append(wf.await_status("o-1", run_id, Status.DONE, timeout=5)))
    waiting.start()
    wf.run()
    waiting.join(5)
    assert [r.status for r in found] == [Status.DONE]


def test_a_pause_never_satisfies_an_await(start, poll_until, run_state_of):
    """Awaiting the terminal status of a run that gets paused times out with AwaitTimeout."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: run.pause("hold"), Status.DONE)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    with pytest.raises(af.AwaitTimeout) as caught:
        wf.await_status("o-1", run_id, Status.DONE, timeout=0.5)  # the pause happens meanwhile
    assert isinstance(caught.value, af.ActorflowError)
    assert isinstance(caught.value, TimeoutError)
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause")


def test_a_cancel_never_satisfies_an_await(start, poll_until, run_state_of):
    """A cancelled run never reaches the awaited status: AwaitTimeout."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: run.cancel("no"), Status.DONE)
    wf = start(b)
    run_id = wf.trigger("o-1")
    with pytest.raises(af.AwaitTimeout):
        wf.await_status("o-1", run_id, Status.DONE, timeout=0.5)
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.CANCELLED, what="the cancel")


def test_await_of_a_status_outside_the_graph_raises_unknown_status(build, linear):
    """Awaiting a status the graph does not have is refused at once."""
    wf = build(linear())
    run_id = wf.trigger("o-1")
    with pytest.raises(af.UnknownStatus):
        wf.await_status("o-1", run_id, Status.UNUSED, timeout=5)


def test_concurrent_awaits_of_one_run_all_return(build, linear):
    """Several callers awaiting statuses of the same run each get their answer."""
    wf = build(linear())
    run_id = wf.trigger("o-1")
    found: dict[Status, af.Run[Order, Status]] = {}
    lock = threading.Lock()

    def wait(status: Status) -> None:
        run = wf.await_status("o-1", run_id, status, timeout=5)
        with lock:
            found[status] = run

    statuses = [Status.CHARGED, Status.SHIPPED, Status.DONE, Status.DONE]
    threads = [threading.Thread(target=wait, args=(s,)) for s in statuses]
    for t in threads:
        t.start()
    wf.run()
    for t in threads:
        t.join(5)
    assert {s: r.meta.version for s, r in found.items()} == {Status.CHARGED: 2, Status.SHIPPED: 3, Status.DONE: 4}
