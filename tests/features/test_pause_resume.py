"""Record-level actions (pause, resume, cancel) through the run-state table, and paused-run retry."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import actorflow as af
from tests.model import Calls, Order, Status


@pytest.fixture
def one_step():
    """``one_step(calls, pause_first=False)``: STARTED -> DONE; optionally pausing the first time."""

    def _builder(calls: Calls | None = None, *, pause_first: bool = False) -> af.Builder[Order, Status]:
        log = calls if calls is not None else Calls()
        b = af.Builder("orders", Order, Status)

        def charge(run: af.Run[Order, Status]) -> Status:
            if log.add("charge", run.run_id) == 1 and pause_first:
                return run.pause("needs review")
            return Status.DONE

        b.add_step(Status.STARTED, charge, Status.DONE)
        return b

    return _builder


def _refused(wf: af.Workflow[Order, Status], run_id: str, action, *args: str) -> None:
    """``action`` is refused by the run-state table and stores nothing."""
    before = wf.record_store.lookup(run_id)
    with pytest.raises(af.InvalidRunStateTransition):
        action(run_id, *args)
    assert wf.record_store.lookup(run_id) == before


def _completed(start, one_step) -> tuple[af.Workflow[Order, Status], str]:
    wf = start(one_step())
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    return wf, run_id


# -- the run-state table -----------------------------------------------------------------


def test_pause_an_initiated_run(build, one_step):
    """Initiated -> Paused is allowed: the reason is stored, the version goes up by one."""
    wf = build(one_step())
    run_id = wf.trigger("o-1")
    record = wf.pause(run_id, "hold")
    assert (record.run_state, record.meta.run_state_reason, record.meta.version) == (af.RunState.PAUSED, "hold", 2)
    assert wf.record_store.lookup(run_id) == record


def test_resume_a_paused_run(build, one_step):
    """Paused -> Running is allowed and clears the reason."""
    wf = build(one_step())
    run_id = wf.trigger("o-1")
    wf.pause(run_id, "hold")
    record = wf.resume(run_id)
    assert (record.run_state, record.meta.run_state_reason, record.meta.version) == (af.RunState.RUNNING, "", 3)
    assert record.status == Status.STARTED


def test_cancel_a_paused_run(build, one_step):
    """Paused -> Cancelled is allowed, with the reason."""
    wf = build(one_step())
    run_id = wf.trigger("o-1")
    wf.pause(run_id, "hold")
    record = wf.cancel(run_id, "customer left")
    assert (record.run_state, record.meta.run_state_reason) == (af.RunState.CANCELLED, "customer left")


def test_cancel_an_initiated_run_is_refused(build, one_step):
    """Initiated -> Cancelled is not in the table: InvalidRunStateTransition, nothing stored."""
    wf = build(one_step())
    run_id = wf.trigger("o-1")
    _refused(wf, run_id, wf.cancel, "too early")


def test_pause_a_paused_run_is_refused(build, one_step):
    """X -> X is never allowed: pausing a paused run is refused."""
    wf = build(one_step())
    run_id = wf.trigger("o-1")
    wf.pause(run_id, "hold")
    _refused(wf, run_id, wf.pause, "again")


def test_resume_a_completed_run_is_refused(start, one_step):
    """A completed run cannot be resumed: InvalidRunStateTransition, nothing stored."""
    wf, run_id = _completed(start, one_step)
    _refused(wf, run_id, wf.resume)


def test_pause_a_completed_run_is_refused(start, one_step):
    """A completed run cannot be paused."""
    wf, run_id = _completed(start, one_step)
    _refused(wf, run_id, wf.pause, "late")


def test_cancel_a_completed_run_is_refused(start, one_step):
    """A completed run cannot be cancelled."""
    wf, run_id = _completed(start, one_step)
    _refused(wf, run_id, wf.cancel, "late")


def test_resume_a_cancelled_run_is_refused(build, one_step):
    """A cancelled run is finished: it cannot be resumed."""
    wf = build(one_step())
    run_id = wf.trigger("o-1")
    wf.pause(run_id, "hold")
    wf.cancel(run_id, "customer left")
    _refused(wf, run_id, wf.resume)


def test_an_action_on_an_unknown_run_raises_record_not_found(build, one_step):
    """Pausing a run id that does not exist raises RecordNotFound."""
    wf = build(one_step())
    with pytest.raises(af.RecordNotFound):
        wf.pause("no-such-run", "hold")


def test_resume_runs_the_current_step_again(start, one_step, poll_until, run_state_of):
    """A run paused by its step is, once resumed, handed to that step again and moves on."""
    calls = Calls()
    wf = start(one_step(calls, pause_first=True), pause_retry=None)
    run_id = wf.trigger("o-1")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause")
    wf.resume(run_id)
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert calls.count("charge", run_id) == 2
    assert run.meta.version == 4  # trigger, pause, resume, done


def test_a_run_paused_before_its_step_runs_is_not_stepped(build, one_step, poll_until):
    """Steps skip a paused run; resuming it lets the step run."""
    calls = Calls()
    wf = build(one_step(calls), pause_retry=None)
    paused = wf.trigger("paused")
    wf.pause(paused, "hold")
    wf.run()
    other = wf.trigger("other")  # behind the paused run's event on the same shard
    wf.await_status("other", other, Status.DONE, timeout=5)
    assert calls.count("charge", paused) == 0
    wf.resume(paused)
    wf.await_status("paused", paused, Status.DONE, timeout=5)


# -- paused-run retry ------------------------------------------------------------------------


def test_a_paused_run_is_resumed_after_pause_retry(start, clock, one_step):
    """With pause_retry=60s a paused run resumes 60 seconds (on the workflow clock) after its pause."""
    calls = Calls()
    paused = threading.Event()
    b = one_step(calls, pause_first=True)
    b.on_pause(lambda record: paused.set())
    wf = start(b, pause_retry=60)
    run_id = wf.trigger("o-1")
    assert paused.wait(5)  # the pause event is published (stamped with the fake clock)
    clock.advance(timedelta(seconds=61))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert calls.count("charge", run_id) == 2


def test_a_paused_run_is_not_resumed_before_pause_retry(start, clock, one_step):
    """Before pause_retry has passed, the paused run stays paused."""
    calls = Calls()
    paused = threading.Event()
    b = one_step(calls, pause_first=True)
    b.on_pause(lambda record: paused.set())
    wf = start(b, pause_retry=60)
    run_id = wf.trigger("o-1")
    assert paused.wait(5)
    clock.advance(timedelta(seconds=59))
    with pytest.raises(af.AwaitTimeout):
        wf.await_status("o-1", run_id, Status.DONE, timeout=0.3)
    assert wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED


def test_an_auto_paused_run_is_resumed_after_pause_retry(start, clock, poll_until, run_state_of):
    """A run paused at the error limit is retried after pause_retry and can then complete."""
    calls = Calls()
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        if calls.add("charge", run.run_id) <= 2:
            msg = "provider down"
            raise RuntimeError(msg)
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE).with_options(pause_after_err_count=2)
    paused = threading.Event()
    b.on_pause(lambda record: paused.set())
    wf = start(b, pause_retry=timedelta(minutes=10))
    run_id = wf.trigger("o-1")
    assert paused.wait(5)
    clock.advance(timedelta(minutes=11))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert calls.count("charge", run_id) == 3


def test_pause_retry_none_disables_the_retry_process(start, one_step):
    """pause_retry=None runs no paused-records-retry-consumer."""
    wf = start(one_step(), pause_retry=None)
    assert "paused-records-retry-consumer" not in wf.states()
    assert "delete-consumer" in wf.states()


def test_pause_retry_none_leaves_paused_runs_paused(start, clock, one_step):
    """With the retry disabled a paused run stays paused however late it gets."""
    paused = threading.Event()
    b = one_step(pause_first=True)
    b.on_pause(lambda record: paused.set())
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    assert paused.wait(5)
    clock.advance(timedelta(days=30))
    with pytest.raises(af.AwaitTimeout):
        wf.await_status("o-1", run_id, Status.DONE, timeout=0.3)
    assert wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED


def test_a_run_paused_again_waits_the_full_pause_retry_from_its_new_pause(start, clock):
    """The retry of an earlier pause does not resume a later pause early: each pause waits its own time."""
    calls = Calls()
    pauses: list[int] = []
    paused = threading.Semaphore(0)
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        return run.pause("needs review") if calls.add("charge", run.run_id) <= 2 else Status.DONE

    def on_pause(record: af.TypedRecord[Order, Status]) -> None:
        pauses.append(record.meta.version)
        paused.release()

    b.add_step(Status.STARTED, charge, Status.DONE)
    b.on_pause(on_pause)
    wf = start(b, pause_retry=60)
    run_id = wf.trigger("o-1")
    assert paused.acquire(timeout=5)  # first pause, at T0
    clock.advance(timedelta(seconds=30))
    wf.resume(run_id)
    assert paused.acquire(timeout=5)  # second pause, at T0 + 30s
    clock.advance(timedelta(seconds=31))  # the first pause's wait is over, not the second's
    with pytest.raises(af.AwaitTimeout):
        wf.await_status("o-1", run_id, Status.DONE, timeout=0.3)
    clock.advance(timedelta(seconds=30))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert pauses == [2, 4]
