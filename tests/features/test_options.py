"""Options: a step's own options win, the rest come from the workflow defaults; process names."""

from __future__ import annotations

import enum
import itertools
import threading
import time
from datetime import timedelta

import pytest

import actorflow as af
from actorflow.testing import await_timeout_insert
from tests.model import Calls, Order, Status


def _failing(times: list[float], *, fail: int | None, options: af.Options) -> af.Builder[Order, Status]:
    """STARTED -> DONE whose step logs when it is called and raises ``fail`` times (None: always)."""
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        times.append(time.monotonic())
        if fail is None or len(times) <= fail:
            msg = "declined"
            raise RuntimeError(msg)
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE).with_options(options)
    return b


def test_unset_step_options_are_inherited_from_the_defaults(start, poll_until, run_state_of):
    """A step setting only pause_after_err_count keeps the default err_backoff (not zero, not 1s)."""
    times: list[float] = []
    b = _failing(times, fail=None, options=af.Options(pause_after_err_count=3))
    wf = start(b, defaults=af.Options(err_backoff=0.3, polling_frequency=0.02), pause_retry=None)
    run_id = wf.trigger("o-1")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause after 3 errors")
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 3
    assert all(0.28 <= gap < 0.9 for gap in gaps), gaps


def test_defaults_not_given_keep_the_originals_values(start, poll_until, run_state_of):
    """Workflow defaults that set only pause_after_err_count keep the original's 1s err_backoff."""
    times: list[float] = []
    b = _failing(times, fail=None, options=af.Options())
    wf = start(b, defaults=af.Options(pause_after_err_count=2), pause_retry=None)
    run_id = wf.trigger("o-1")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause after 2 errors")
    assert len(times) == 2
    assert 0.95 <= times[1] - times[0] < 1.8


def test_step_options_override_the_defaults(start):
    """A step's own err_backoff wins over a long default one: the retry comes at once."""
    times: list[float] = []
    b = _failing(times, fail=1, options=af.Options(err_backoff=0.02))
    wf = start(b, defaults=af.Options(err_backoff=30, polling_frequency=0.02))
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert len(times) == 2


def test_durations_may_be_timedeltas(start):
    """Options take durations as timedelta as well as seconds."""
    times: list[float] = []
    b = _failing(times, fail=1, options=af.Options(err_backoff=timedelta(milliseconds=20)))
    wf = start(b, defaults=af.Options(polling_frequency=timedelta(milliseconds=20)))
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)


class Signup(enum.IntEnum):
    INITIATED = 1
    NAME_CREATED = 2
    CELLPHONE_NUMBER_SUBMITTED = 3
    OTP_VERIFIED = 4
    COMPLETED = 5


def _signup() -> af.Builder[Order, Signup]:
    """The original's TestExpectedProcesses workflow, with our status names."""
    b = af.Builder("signup", Order, Signup)
    b.add_step(Signup.INITIATED, lambda run: Signup.NAME_CREATED, Signup.NAME_CREATED)
    b.add_step(Signup.NAME_CREATED, lambda run: Signup.CELLPHONE_NUMBER_SUBMITTED, Signup.CELLPHONE_NUMBER_SUBMITTED)
    b.add_step(Signup.CELLPHONE_NUMBER_SUBMITTED, lambda run: Signup.OTP_VERIFIED, Signup.OTP_VERIFIED).with_options(
        parallel_count=2
    )
    b.add_callback(Signup.OTP_VERIFIED, lambda run, payload: Signup.COMPLETED, Signup.COMPLETED)
    b.add_timeout(
        Signup.OTP_VERIFIED, af.duration_timer(timedelta(hours=1)), lambda run, now: Signup.COMPLETED, Signup.COMPLETED
    )
    b.on_complete(lambda record: None)
    return b


SIGNUP_PROCESSES = {
    "initiated-consumer-1-of-1",
    "name_created-consumer-1-of-1",
    "cellphone_number_submitted-consumer-1-of-2",
    "cellphone_number_submitted-consumer-2-of-2",
    "otp_verified-timeout-consumer",
    "otp_verified-timeout-auto-inserter-consumer",
    "outbox-consumer",
    "completed-run-state-change-hook-consumer",
    "delete-consumer",
    "paused-records-retry-consumer",
}


def test_states_names_every_process_as_the_original_does(start):
    """states() holds exactly the original's process names (callbacks make no process).

    Minus ``outbox-consumer`` on stacks whose store publishes events itself (no relay needed).
    """
    wf = start(_signup(), defaults=None)
    # A store that writes events in the record's own transaction needs no outbox relay.
    relay = set() if wf.publishes_directly else {"outbox-consumer"}
    assert set(wf.states()) == (SIGNUP_PROCESSES - {"outbox-consumer"}) | relay


def test_states_are_running_once_the_workflow_runs(start, poll_until):
    """Each process reports RUNNING once it holds its role."""
    wf = start(_signup())
    poll_until(lambda: set(wf.states().values()) == {af.ProcessState.RUNNING}, what="every process running")


def test_without_outbox_there_is_no_outbox_process(start):
    """outbox=False drops outbox-consumer (another process relays the outbox)."""
    wf = start(_signup(), outbox=False)
    assert set(wf.states()) == SIGNUP_PROCESSES - {"outbox-consumer"}


@pytest.mark.parametrize("option", [{"parallel_count": 2}, {"lag": 5}])
def test_timeouts_refuse_parallel_count_and_lag(option):
    """A timeout cannot be sharded or lagged: with_options raises a ValueError."""
    b = af.Builder("orders", Order, Status)
    spec = b.add_timeout(Status.STARTED, af.duration_timer(60), lambda run, now: Status.DONE, Status.DONE)
    with pytest.raises(ValueError):
        spec.with_options(**option)


# -- processes whose lag is fixed: the defaults' consume lag must not reach them ----------

LAGGED = af.Options(lag=timedelta(hours=1), polling_frequency=0.02, err_backoff=0.02)


def _approvals_with_timeout() -> af.Builder[Order, Status]:
    """AWAITING times out to EXPIRED or is APPROVED by callback (no step needed to finish)."""
    b = af.Builder("approvals", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_timeout(
        Status.AWAITING, af.duration_timer(timedelta(minutes=30)), lambda run, now: Status.EXPIRED, Status.EXPIRED
    )
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    return b


def test_a_default_consume_lag_does_not_delay_the_timeout_inserter(start):
    """The timeout auto-inserter has no lag (as in the original), whatever the defaults say."""
    wf = start(_approvals_with_timeout(), defaults=LAGGED)
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    await_timeout_insert(wf, "a-1", run_id, Status.AWAITING, timeout=3)


def test_a_default_consume_lag_does_not_delay_data_deletion(start, poll_until, run_state_of):
    """The delete consumer has no lag (as in the original), whatever the defaults say."""
    wf = start(_approvals_with_timeout(), defaults=LAGGED)
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    wf.callback("a-1", Status.AWAITING, b"{}")
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, timeout=3, what="the deletion")


def test_a_default_consume_lag_does_not_replace_the_pause_retry_wait(start, clock):
    """Defaults with lag=0 do not make paused runs resume at once: pause_retry still applies."""
    calls = Calls()
    paused = threading.Event()
    b = af.Builder("orders", Order, Status)
    b.add_step(
        Status.STARTED,
        lambda run: run.pause("hold") if calls.add("charge", run.run_id) == 1 else Status.DONE,
        Status.DONE,
    )
    b.on_pause(lambda record: paused.set())
    wf = start(b, defaults=af.Options(lag=0, polling_frequency=0.02, err_backoff=0.02), pause_retry=60)
    run_id = wf.trigger("o-1")
    assert paused.wait(5)
    with pytest.raises(af.AwaitTimeout):
        wf.await_status("o-1", run_id, Status.DONE, timeout=0.5)
    clock.advance(timedelta(seconds=61))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
