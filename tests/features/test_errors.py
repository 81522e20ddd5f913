"""Step errors: retried after the back-off, counted per run, and the run paused at the limit."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

import actorflow as af
from actorflow.testing import await_timeout_insert
from tests.model import Calls, Order, Status, Unencodable

AUTO_PAUSE_REASON = "max error retry threshold hit - automatically paused"


def _failing_builder(calls: Calls, *, fail_times: int | None, pause_after: int = 0) -> af.Builder[Order, Status]:
    """STARTED -> DONE whose step raises ``fail_times`` times per run (``None``: always)."""
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        n = calls.add("charge", run.run_id)
        if fail_times is None or n <= fail_times:
            msg = f"payment provider down (attempt {n})"
            raise RuntimeError(msg)
        return Status.DONE

    spec = b.add_step(Status.STARTED, charge, Status.DONE)
    if pause_after:
        spec.with_options(pause_after_err_count=pause_after)
    return b


def test_a_failing_step_is_retried_and_succeeds_later(start):
    """A step that raises is called again after err_backoff; once it succeeds the run moves on."""
    calls = Calls()
    wf = start(_failing_builder(calls, fail_times=2))
    run_id = wf.trigger("o-1")
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert calls.count("charge", run_id) == 3
    assert run.meta.version == 2  # the failures stored nothing


def test_a_step_errors_log_record_carries_the_runs_context(start, caplog):
    """The warning for a step error has workflow, process, run id, foreign id and status as fields."""
    calls = Calls()
    with caplog.at_level("WARNING", logger="actorflow"):
        wf = start(_failing_builder(calls, fail_times=1))
        run_id = wf.trigger("o-ctx")
        wf.await_status("o-ctx", run_id, Status.DONE, timeout=5)
    (found,) = [r for r in caplog.records if "step error" in r.getMessage() and getattr(r, "run_id", None) == run_id]
    assert (found.workflow, found.foreign_id, found.status) == ("orders", "o-ctx", int(Status.STARTED))
    assert found.process_name.startswith("started-consumer")


def test_a_workflow_built_with_a_logger_logs_there(start, caplog):
    """``build(logger=...)`` (the original's WithLogger): the workflow's step errors and pauses go to the
    user's logger (an adapter adds its own context), not to ``actorflow``."""
    import logging

    calls = Calls()
    mine = logging.getLogger("myapp.orders")
    adapter = logging.LoggerAdapter(mine, {"tenant": "acme"})
    with caplog.at_level("WARNING"):
        wf = start(_failing_builder(calls, fail_times=1), logger=adapter)
        run_id = wf.trigger("o-log")
        wf.await_status("o-log", run_id, Status.DONE, timeout=5)
    errors = [r for r in caplog.records if "step error" in r.getMessage()]
    assert errors, "the step error was not logged"
    assert {r.name for r in errors} == {"myapp.orders"}
    (found,) = errors
    assert (found.tenant, found.run_id, found.foreign_id) == ("acme", run_id, "o-log")


def test_a_process_log_record_names_its_workflow_process_role_node_and_run(start, caplog, poll_until):
    """A hook that fails is logged by its process with the run's and the process's context as fields."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)

    def hook(record: af.TypedRecord[Order, Status]) -> None:
        raise RuntimeError("the mailer is down")

    b.on_complete(hook)
    with caplog.at_level("WARNING", logger="actorflow"):
        wf = start(b)
        run_id = wf.trigger("o-hook")
        wf.await_status("o-hook", run_id, Status.DONE, timeout=5)
        poll_until(lambda: any("hook failed" in r.getMessage() for r in caplog.records), what="the hook's failure")
    # The first failure's record (the hook is retried after the back-off: a slow machine logs more).
    found = next(r for r in caplog.records if "hook failed" in r.getMessage())
    assert (found.workflow, found.run_id, found.foreign_id) == ("orders", run_id, "o-hook")
    assert found.process_name == found.role.removeprefix("orders-")
    assert found.node


def test_a_run_is_paused_after_pause_after_err_count_errors(start, poll_until, run_state_of):
    """With pause_after_err_count=3 a step that always raises pauses its run after 3 calls."""
    calls = Calls()
    wf = start(_failing_builder(calls, fail_times=None, pause_after=3), pause_retry=None)
    run_id = wf.trigger("o-1")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the auto-pause")
    record = wf.record_store.lookup(run_id)
    assert record.meta.run_state_reason == AUTO_PAUSE_REASON
    assert record.status == Status.STARTED
    assert record.meta.version == 2
    assert calls.count("charge", run_id) == 3


def test_the_auto_pause_fires_the_on_pause_hook(start):
    """Pausing at the error limit is a pause like any other: on_pause receives the run."""
    hooked: list[af.TypedRecord[Order, Status]] = []
    paused = threading.Event()
    b = _failing_builder(Calls(), fail_times=None, pause_after=2)

    def on_pause(record: af.TypedRecord[Order, Status]) -> None:
        hooked.append(record)
        paused.set()

    b.on_pause(on_pause)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    assert paused.wait(5)
    assert [(r.run_id, r.meta.run_state_reason) for r in hooked] == [(run_id, AUTO_PAUSE_REASON)]


def test_errors_are_counted_per_run(start):
    """Two runs failing once each with the same error do not add up to a pause at a limit of 2."""
    calls = Calls()
    wf = start(_failing_builder(calls, fail_times=1, pause_after=2))
    first = wf.trigger("o-1")
    second = wf.trigger("o-2")
    assert wf.await_status("o-1", first, Status.DONE, timeout=5).run_state is af.RunState.COMPLETED
    assert wf.await_status("o-2", second, Status.DONE, timeout=5).run_state is af.RunState.COMPLETED
    assert (calls.count("charge", first), calls.count("charge", second)) == (2, 2)


def test_errors_are_cleared_when_the_run_moves_on(start):
    """Errors before a successful write do not count toward the limit after it."""
    calls = Calls()
    b = af.Builder("orders", Order, Status)

    def count(run: af.Run[Order, Status]) -> Status:
        n = calls.add("count", run.run_id)
        # Fails, saves, fails, saves, fails, finishes: never two errors in a row.
        if n % 2 == 1 and n < 6:
            msg = "flaky"
            raise RuntimeError(msg)
        run.object.amount += 1
        return run.save_and_repeat() if run.object.amount < 3 else Status.DONE

    b.add_step(Status.STARTED, count, Status.DONE).with_options(pause_after_err_count=2)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert run.object.amount == 3
    assert calls.count("count", run_id) == 6


def test_a_status_outside_the_destinations_is_a_step_error_that_stores_nothing(start, poll_until, run_state_of):
    """A step returning a status it may not go to stores nothing and counts as an error."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.SHIPPED, Status.CHARGED).with_options(pause_after_err_count=1)
    b.add_step(Status.SHIPPED, lambda run: Status.DONE, Status.DONE)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause at the error")
    record = wf.record_store.lookup(run_id)
    assert record.status == Status.STARTED
    assert record.meta.version == 2  # only the pause was written


def test_a_step_returning_a_wrong_status_is_retried_until_it_returns_a_right_one(start):
    """The invalid result is retried like any step error; a later valid result moves the run."""
    calls = Calls()
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        n = calls.add("charge", run.run_id)
        return Status.SHIPPED if n == 1 else Status.CHARGED

    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.SHIPPED, lambda run: Status.DONE, Status.DONE)
    wf = start(b)
    run_id = wf.trigger("o-1")
    run = wf.await_status("o-1", run_id, Status.CHARGED, timeout=5)
    assert run.meta.version == 2
    assert calls.count("charge", run_id) == 2


def test_a_step_returning_none_is_a_step_error_that_stores_nothing(start, poll_until, run_state_of):
    """A step that forgets to return a status stores nothing and is paused at the limit."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: None, Status.DONE).with_options(pause_after_err_count=1)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause at the error")
    record = wf.record_store.lookup(run_id)
    assert record.status == Status.STARTED
    assert record.meta.version == 2


def test_an_object_that_does_not_encode_is_a_step_error_that_stores_nothing(start, poll_until, run_state_of):
    """A step that leaves its object unencodable stores nothing: the stored object is the old one."""
    b = af.Builder("things", Unencodable, Status)

    def charge(run: af.Run[Unencodable, Status]) -> Status:
        run.object.things.add(object())
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE).with_options(pause_after_err_count=1)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("t-1", Unencodable(id="t-1"))
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause at the error")
    record = wf.record_store.lookup(run_id)
    assert record.status == Status.STARTED
    assert record.meta.version == 2
    assert wf.codec.decode(record.object) == Unencodable(id="t-1")


def test_a_failing_run_holds_only_itself_until_it_is_paused(build, poll_until, run_state_of):
    """A run behind a failing one on the same shard is stepped at once; the failing run is retried until paused."""
    order: list[str] = []
    lock = threading.Lock()
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        with lock:
            order.append(run.foreign_id)
        if run.foreign_id == "poisoned":
            msg = "always fails"
            raise RuntimeError(msg)
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE).with_options(pause_after_err_count=4)
    wf = build(b, pause_retry=None)
    # Both are stored before the node starts: "behind" is on the shard right after "poisoned".
    poisoned = wf.trigger("poisoned")
    behind = wf.trigger("behind")
    wf.run()
    wf.await_status("behind", behind, Status.DONE, timeout=5)
    with lock:
        before_behind = order[: order.index("behind")]
    assert before_behind.count("poisoned") <= 1, "the run behind waited for the failing one's retry"
    poll_until(lambda: run_state_of(wf, poisoned) is af.RunState.PAUSED, what="the auto-pause")
    assert sorted(order) == ["behind"] + ["poisoned"] * 4


def test_errors_are_cleared_when_another_process_moves_the_run_on(start, poll_until, run_state_of):
    """Errors of a step before a callback moved the run on do not count on the run's next visit."""
    calls = Calls()
    failed_once = threading.Event()
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.CHARGED, Status.CHARGED)

    def charge(run: af.Run[Order, Status]) -> Status:
        n = calls.add("charge", run.run_id)
        if n <= 2:  # fails on the first visit, and once on the second
            failed_once.set()
            msg = "bank timeout"
            raise RuntimeError(msg)
        return Status.DONE

    b.add_step(Status.CHARGED, charge, Status.DONE).with_options(pause_after_err_count=2, err_backoff=0.5)
    b.add_callback(Status.CHARGED, lambda run, payload: Status.SHIPPED, Status.SHIPPED)
    b.add_step(Status.SHIPPED, lambda run: Status.CHARGED, Status.CHARGED)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    assert failed_once.wait(5)
    wf.callback("o-1", Status.CHARGED, b"{}")  # moves the run on while the step backs off
    settled = (af.RunState.COMPLETED, af.RunState.PAUSED)
    poll_until(lambda: run_state_of(wf, run_id) in settled, what="the run completing (or pausing)")
    record = wf.record_store.lookup(run_id)
    assert (record.run_state, record.meta.run_state_reason) == (af.RunState.COMPLETED, "")
    assert calls.count("charge", run_id) == 3


def _stalling_builder(calls: Calls, release: threading.Event, *, pause_after: int = 0) -> af.Builder[Order, Status]:
    """STARTED -> DONE whose step hangs on its first call (until ``release``), with a 0.2 s step_timeout."""
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        if calls.add("charge", run.run_id) == 1:
            release.wait(30)
        run.object.notes.append("charged")
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE).with_options(step_timeout=0.2, pause_after_err_count=pause_after)
    return b


def test_a_step_past_its_step_timeout_is_abandoned_and_retried(start):
    """The hung call counts as a step error; the retry completes the run; the abandoned call's result is dropped."""
    calls, release = Calls(), threading.Event()
    wf = start(_stalling_builder(calls, release))
    try:
        run_id = wf.trigger("o-1", Order(id="o-1"))
        run = wf.await_status("o-1", run_id, Status.DONE, timeout=10)
    finally:
        release.set()  # the abandoned call returns now: nothing of it is stored
    assert run.object.notes == ["charged"]
    assert calls.count("charge", run_id) == 2
    assert wf.record_store.lookup(run_id).meta.version == 2


def test_a_step_timeout_counts_toward_pause_after_err_count(start, poll_until, run_state_of):
    """With pause_after_err_count=1, a step that overruns pauses its run."""
    calls, release = Calls(), threading.Event()
    wf = start(_stalling_builder(calls, release, pause_after=1))
    try:
        run_id = wf.trigger("o-1", Order(id="o-1"))
        poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, timeout=10, what="the run paused")
    finally:
        release.set()
    assert wf.record_store.lookup(run_id).meta.run_state_reason == AUTO_PAUSE_REASON


def test_step_timeout_is_an_option_of_steps_with_a_clear_error_for_a_bad_value():
    """Options(step_timeout=...) takes seconds or a timedelta; a negative one is refused."""
    from datetime import timedelta

    import pytest

    assert af.Options(step_timeout=timedelta(seconds=2)).resolve().step_timeout == 2.0
    assert af.Options().resolve().step_timeout == 0.0
    with pytest.raises(ValueError, match="step_timeout"):
        af.Options(step_timeout=-1)


def test_a_run_whose_stored_object_cannot_be_decoded_is_paused_at_once_and_reported(build, poll_until, run_state_of):
    """An undecodable stored object is no step error to retry for ever (the default limit is 0).

    The run is paused at once with a reason naming the failure, counted in
    ``actorflow_corrupt_records``, and the other runs go on.
    """
    calls = Calls()
    wf = build(_failing_builder(calls, fail_times=0), pause_retry=None)
    labels = {"workflow_name": wf.name, "process_name": "started-consumer-1-of-1"}

    def corrupt() -> float:
        return wf.metrics.registry.get_sample_value("actorflow_corrupt_records_total", labels) or 0.0

    before = corrupt()  # the registry may be shared with other tests' workflows of this name
    bad = wf.trigger("bad")
    record = wf.record_store.lookup(bad)
    wf.record_store.store(wf.engine.transitions.next(record, run_state=af.RunState.RUNNING, data=b"{{{").record)
    good = wf.trigger("good")
    wf.run()
    assert wf.await_status("good", good, Status.DONE, timeout=5).meta.version == 2
    poll_until(lambda: run_state_of(wf, bad) is af.RunState.PAUSED, what="the corrupt run's pause")
    paused = wf.record_store.lookup(bad)
    assert paused.meta.run_state_reason.startswith("stored run unreadable - automatically paused: ")
    assert "cannot decode" in paused.meta.run_state_reason
    assert (paused.status, paused.meta.version, paused.object) == (Status.STARTED, 3, b"{{{")  # the data kept as found
    assert calls.count("charge", bad) == 0  # the step never saw it
    assert corrupt() == before + 1


# -- a stored status outside the workflow's enum ----------------------------------------------------

OUTSIDE = 77  # no member of Status: what a hand edit, a bad migration or a removed member leaves


def _waiting_builder() -> af.Builder[Order, Status]:
    """STARTED -> AWAITING, which a timeout (30 minutes) moves to EXPIRED or a callback to APPROVED."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_timeout(
        Status.AWAITING, af.duration_timer(timedelta(minutes=30)), lambda run, now: Status.EXPIRED, Status.EXPIRED
    )
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    return b


def _store_outside_the_enum(wf: af.Workflow[Any, Any], run_id: str) -> af.Record:
    """Store the run's next version at `OUTSIDE`, straight into the store (no step would return it)."""
    record = wf.record_store.lookup(run_id)
    moved = wf.engine.transitions.next(record, run_state=af.RunState.RUNNING, status=OUTSIDE).record
    wf.record_store.store(moved)
    return moved


def _corrupt_count(wf: af.Workflow[Any, Any]) -> float:
    """``actorflow_corrupt_records_total`` of ``wf``'s workflow, every process summed."""
    return sum(
        sample.value
        for metric in wf.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "actorflow_corrupt_records_total" and sample.labels.get("workflow_name") == wf.name
    )


def _assert_paused_as_corrupt(wf: af.Workflow[Any, Any], run_id: str, version: int) -> None:
    paused = wf.record_store.lookup(run_id)
    assert (paused.run_state, paused.status, paused.meta.version) == (af.RunState.PAUSED, OUTSIDE, version)
    assert paused.meta.run_state_reason.startswith("stored run unreadable - automatically paused: ")
    assert f"status {OUTSIDE} is not a Status" in paused.meta.run_state_reason


def test_a_timeout_of_a_run_stored_at_a_status_outside_the_enum_pauses_it(start, clock, poll_until, caplog):
    """The poller meets the run at a status that is no member: reported, counted, paused; its timeout kept.

    Before, the status mismatch read as "the run moved on": the timeout was dropped, nothing said.
    """
    wf = start(_waiting_builder())
    before = _corrupt_count(wf)
    run_id = wf.trigger("t-1")
    await_timeout_insert(wf, "t-1", run_id, Status.AWAITING)
    moved = _store_outside_the_enum(wf, run_id)
    with caplog.at_level("ERROR", logger="actorflow"):
        clock.advance(timedelta(minutes=30))
        poll_until(lambda: wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED, what="the pause")
    _assert_paused_as_corrupt(wf, run_id, moved.meta.version + 1)
    assert _corrupt_count(wf) == before + 1
    assert any(run_id in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert [t.run_id for t in wf.timeout_store.list(wf.name) if not t.completed] == [run_id]  # kept for a mend
    good = wf.trigger("t-2")  # the other runs go on
    wf.await_status("t-2", good, Status.AWAITING, timeout=10)
    wf.callback("t-2", Status.AWAITING, b"")
    assert wf.await_status("t-2", good, Status.APPROVED, timeout=10).run_state is af.RunState.COMPLETED


def test_a_callback_for_a_run_stored_at_a_status_outside_the_enum_raises_and_pauses_it(build):
    """Not a silent ``None`` ("not at the status"): `CorruptRecord`, the run reported and paused once."""
    wf = build(_waiting_builder())
    before = _corrupt_count(wf)
    run_id = wf.trigger("c-1", start_at=Status.AWAITING)
    moved = _store_outside_the_enum(wf, run_id)
    with pytest.raises(af.CorruptRecord, match=f"status {OUTSIDE} is not a Status") as caught:
        wf.callback("c-1", Status.AWAITING, b"")
    assert caught.value.run_id == run_id
    _assert_paused_as_corrupt(wf, run_id, moved.meta.version + 1)
    assert _corrupt_count(wf) == before + 1
    with pytest.raises(af.CorruptRecord):  # still refused; paused already, so nothing more is written
        wf.callback("c-1", Status.AWAITING, b"")
    assert wf.record_store.lookup(run_id).meta.version == moved.meta.version + 1


def test_await_status_of_a_run_stored_at_a_status_outside_the_enum_fails_at_once(build):
    """No consumer reads that status's topic: the wait raises `CorruptRecord` instead of running out its timeout.

    (Before, each of these waited the whole 60 s and raised `AwaitTimeout`.)
    """
    wf = build(_waiting_builder())
    run_id = wf.trigger("w-1")
    moved = _store_outside_the_enum(wf, run_id)
    with pytest.raises(af.CorruptRecord, match=run_id):
        wf.await_status("w-1", run_id, Status.EXPIRED, timeout=60)
    _assert_paused_as_corrupt(wf, run_id, moved.meta.version + 1)
    with pytest.raises(af.CorruptRecord, match=run_id):  # paused: still refused, from async code too
        asyncio.run(wf.await_status_async("w-1", run_id, Status.EXPIRED, timeout=60))
    assert wf.await_status("w-1", run_id, Status.STARTED, timeout=60).meta.version == 1  # reached before: returned


def test_a_run_whose_object_cannot_be_decoded_at_a_timeout_status_is_paused_at_once(build, poll_until):
    """The timeout inserter (the only reader of a status with timeouts and no step) pauses it as a step would.

    Before, the undecodable object counted as the timer's error: retried for ever with the default limit.
    """
    wf = build(_waiting_builder())
    before = _corrupt_count(wf)
    run_id = wf.trigger("d-1", start_at=Status.AWAITING)
    record = wf.record_store.lookup(run_id)
    wf.record_store.store(wf.engine.transitions.next(record, run_state=af.RunState.RUNNING, data=b"{{{").record)
    wf.run()
    poll_until(lambda: wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED, what="the pause")
    paused = wf.record_store.lookup(run_id)
    assert paused.meta.run_state_reason.startswith("stored run unreadable - automatically paused: ")
    assert (paused.status, paused.meta.version, paused.object) == (Status.AWAITING, 3, b"{{{")
    assert wf.timeout_store.list(wf.name) == []  # no timer ran on it
    assert _corrupt_count(wf) == before + 1
