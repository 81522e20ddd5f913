"""The `RoleScheduler` conformance suite: at most one node holds a role, and roles move on."""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from actorflow.protocols import Lease, RoleScheduler

__all__ = ["ExpiringLeaseSuite", "RoleSchedulerFactory", "RoleSchedulerSuite", "await_role"]

RoleSchedulerFactory = Callable[[int], Sequence[RoleScheduler]]
"""Makes ``n`` schedulers sharing one backing: ``n`` nodes competing for the same roles."""


def await_role(
    scheduler: RoleScheduler,
    role: str,
    node_id: str,
    *,
    timeout: float = 5.0,
    cancel: threading.Event | None = None,
    interval: float = 0.01,
) -> Lease | None:
    """Acquire ``role`` for ``node_id``, retrying until it is free; ``None`` if it never was.

    `RoleScheduler.acquire` never blocks, so a node that wants a role must try again. The
    wait between tries is ``cancel.wait(interval)``: setting ``cancel`` stops the wait at
    once (the original's "released on context cancellation"). Returns ``None`` when
    cancelled or after ``timeout`` seconds.
    """
    stop = cancel or threading.Event()
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        lease = scheduler.acquire(role, node_id)
        if lease is not None:
            return lease
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        stop.wait(min(interval, remaining))
    return None


def _nodes(count: int) -> list[str]:
    return [f"node-{i}" for i in range(count)]


class _Waiter:
    """`await_role` on a thread of its own; remembers its result and when it got it."""

    def __init__(self, scheduler: RoleScheduler, role: str, node_id: str, *, timeout: float) -> None:
        self.cancel = threading.Event()
        self.lease: Lease | None = None
        self.returned_at: float | None = None
        self._thread = threading.Thread(
            target=self._run, args=(scheduler, role, node_id, timeout), name="adaptertest-await-role"
        )
        self._thread.start()

    def _run(self, scheduler: RoleScheduler, role: str, node_id: str, timeout: float) -> None:
        self.lease = await_role(scheduler, role, node_id, timeout=timeout, cancel=self.cancel)
        self.returned_at = time.monotonic()

    def join(self, timeout: float) -> bool:
        """Wait for the waiter to finish; True when it did within ``timeout`` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


class RoleSchedulerSuite:
    """Conformance tests every `actorflow.protocols.RoleScheduler` must pass.

    Subclass it under a ``Test...`` name and give it a ``make_role_scheduler`` fixture: a
    callable taking ``n`` and returning ``n`` schedulers over one shared backing, one per
    competing node (the same object ``n`` times is fine for an in-process scheduler). The
    fixture may be a generator fixture that cleans up after the test::

        import pytest
        from actorflow.adapters.memory import MemoryRoleScheduler
        from actorflow.testing.adaptertest import RoleSchedulerSuite

        class TestMemoryRoleScheduler(RoleSchedulerSuite):
            @pytest.fixture
            def make_role_scheduler(self):
                def make(n):
                    shared = MemoryRoleScheduler()
                    return [shared] * n
                return make

    The cases port ``adaptertest.RunRoleSchedulerTest`` to the non-blocking
    ``acquire``/``release`` contract (see `await_role` for the waiting). Leases with a
    ``ttl`` are also checked to run out, and to last while renewed; schedulers whose
    leases last until released skip those two cases.
    """

    @pytest.fixture
    def make_role_scheduler(self) -> RoleSchedulerFactory:
        """Override this: return a callable ``n -> n schedulers`` sharing one backing."""
        pytest.fail(
            "RoleSchedulerSuite needs a make_role_scheduler fixture: define "
            "`@pytest.fixture def make_role_scheduler(self): return lambda n: [...]` in your test class"
        )

    def test_acquire_returns_a_lease_and_is_idempotent_for_the_holder(
        self, make_role_scheduler: RoleSchedulerFactory
    ) -> None:
        """The lease names the role and node; the holder's acquire again renews it.

        Ports "the passed in context is a parent of the returned context": what the
        caller gets back describes what it asked for.
        """
        (scheduler,) = make_role_scheduler(1)
        lease = scheduler.acquire("leader-cancelled-ctx", "node-0")
        assert isinstance(lease, Lease)
        assert (lease.role, lease.node_id) == ("leader-cancelled-ctx", "node-0")
        assert lease.ttl is None or lease.ttl > 0

        again = scheduler.acquire("leader-cancelled-ctx", "node-0")
        assert again is not None
        assert (again.role, again.node_id) == ("leader-cancelled-ctx", "node-0")
        scheduler.release("leader-cancelled-ctx", "node-0")
        scheduler.release("leader-cancelled-ctx", "node-0")  # releasing a role not held is a no-op

    def test_role_is_locked_and_successive_calls_are_blocked(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """5 nodes competing for ``leader-lock``: at most one ever holds it, and one does."""
        schedulers = make_role_scheduler(5)
        nodes = _nodes(5)
        barrier = threading.Barrier(len(schedulers))
        leases: list[Lease | None] = [None] * len(schedulers)

        def contend(index: int) -> None:
            barrier.wait(timeout=5)
            leases[index] = schedulers[index].acquire("leader-lock", nodes[index])

        threads = [threading.Thread(target=contend, args=(i,), name=f"adaptertest-contend-{i}") for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(t.is_alive() for t in threads), "acquire() must not block"
        holders = {nodes[i] for i, lease in enumerate(leases) if lease is not None}
        assert len(holders) <= 1, f"more than one node obtained the role: {sorted(holders)}"

        # The original watches for 250 ms, checking every 50 ms; here every node keeps trying.
        pace = threading.Event()  # never set: only paces the rounds
        watch_until = time.monotonic() + 0.25
        give_up = time.monotonic() + 5.0
        while time.monotonic() < watch_until or not holders:
            assert time.monotonic() < give_up, "no node obtained the free role within 5 s"
            got = {
                node
                for scheduler, node in zip(schedulers, nodes, strict=True)
                if scheduler.acquire("leader-lock", node)
            }
            assert len(got) <= 1, f"more than one node holds the role: {sorted(got)}"
            holders |= got
            assert len(holders) <= 1, f"the role moved between nodes that never released it: {sorted(holders)}"
            pace.wait(0.05)
        (holder,) = holders
        schedulers[nodes.index(holder)].release("leader-lock", holder)

    def test_release_by_another_node_does_not_release(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """Only the holder can release a role; other roles are independent."""
        first, second = make_role_scheduler(2)
        assert await_role(first, "leader-guarded", "node-0") is not None
        second.release("leader-guarded", "node-1")
        assert second.acquire("leader-guarded", "node-1") is None
        assert await_role(second, "leader-guarded", "node-1", timeout=0.1) is None, "await_role gives up at its timeout"
        assert await_role(second, "another-role", "node-1") is not None
        first.release("leader-guarded", "node-0")
        second.release("another-role", "node-1")

    def test_role_is_released_and_a_waiting_node_acquires_it(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """When the holder releases, a node waiting for the role gets it within 5 s."""
        first, second = make_role_scheduler(2)
        assert await_role(first, "leader-releasing", "node-0") is not None
        assert second.acquire("leader-releasing", "node-1") is None

        waiter = _Waiter(second, "leader-releasing", "node-1", timeout=10)
        try:
            released_at = time.monotonic()
            first.release("leader-releasing", "node-0")
            assert waiter.join(timeout=5), "the waiting node did not obtain the released role within 5 s"
        finally:
            waiter.cancel.set()
            waiter.join(timeout=5)
        assert waiter.lease is not None
        assert waiter.lease.node_id == "node-1"
        assert waiter.returned_at is not None
        assert waiter.returned_at - released_at < 5
        assert first.acquire("leader-releasing", "node-0") is None
        second.release("leader-releasing", "node-1")

    def test_cancelled_wait_returns_promptly(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """Cancelling a node's wait for a held role returns at once, without the role."""
        first, second = make_role_scheduler(2)
        assert await_role(first, "leader-releasing", "node-0") is not None

        waiter = _Waiter(second, "leader-releasing", "node-1", timeout=30)
        cancelled_at = time.monotonic()
        waiter.cancel.set()
        assert waiter.join(timeout=5), "a cancelled wait must return within 5 s"
        assert waiter.returned_at is not None
        assert waiter.returned_at - cancelled_at < 1.0
        assert waiter.lease is None
        assert second.acquire("leader-releasing", "node-1") is None, "the holder keeps the role"
        first.release("leader-releasing", "node-0")

    def test_the_term_grows_with_each_new_holder_and_stays_while_renewed(
        self, make_role_scheduler: RoleSchedulerFactory
    ) -> None:
        """Fencing terms: renewing keeps the term; each new holder gets a higher one, also after a release."""
        first, second = make_role_scheduler(2)
        lease = first.acquire("leader-fenced", "node-0")
        assert lease is not None
        if lease.term == 0:
            first.release("leader-fenced", "node-0")
            pytest.skip("the scheduler keeps no fencing terms (Lease.term is 0)")
        renewed = first.acquire("leader-fenced", "node-0")
        assert renewed is not None
        assert renewed.term == lease.term, "renewing a lease must keep its term"
        first.release("leader-fenced", "node-0")
        taken = await_role(second, "leader-fenced", "node-1")
        assert taken is not None
        assert taken.term > lease.term, "a new holder needs a higher term than its predecessor"
        second.release("leader-fenced", "node-1")
        back = await_role(first, "leader-fenced", "node-0")
        assert back is not None
        assert back.term > taken.term, "terms never go back, whoever held the role before"
        first.release("leader-fenced", "node-0")


class ExpiringLeaseSuite(RoleSchedulerSuite):
    """Every `RoleSchedulerSuite` case, plus those of leases that run out (``Lease.ttl`` set).

    Run it instead of `RoleSchedulerSuite` for a scheduler whose leases expire unless
    renewed (the failover mode), with the same ``make_role_scheduler`` fixture.
    """

    def test_lease_runs_out_after_its_ttl(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """A lease that is not renewed lets another node take the role, never before its ttl."""
        first, second = make_role_scheduler(2)
        started = time.monotonic()
        lease = first.acquire("leader-expiring", "node-0")
        assert lease is not None
        assert lease.ttl is not None, "ExpiringLeaseSuite is for schedulers whose leases have a ttl"

        waiter = _Waiter(second, "leader-expiring", "node-1", timeout=lease.ttl + 5)
        try:
            assert waiter.join(timeout=lease.ttl + 5), "the waiter never returned"
        finally:
            waiter.cancel.set()
            waiter.join(timeout=5)
        assert waiter.lease is not None, f"the role was not free {lease.ttl + 5:.1f}s after an unrenewed lease"
        assert waiter.returned_at is not None
        assert waiter.returned_at - started >= lease.ttl, "the role was given away before the lease ran out"
        assert waiter.lease.term > lease.term or lease.term == 0, "the node that took the role over needs a higher term"
        assert first.acquire("leader-expiring", "node-0") is None, "the lapsed holder cannot take it back"
        second.release("leader-expiring", "node-1")

    def test_renewed_lease_keeps_the_role(self, make_role_scheduler: RoleSchedulerFactory) -> None:
        """A holder renewing within its ttl keeps the role past the ttl."""
        first, second = make_role_scheduler(2)
        lease = first.acquire("leader-renewed", "node-0")
        assert lease is not None
        assert lease.ttl is not None, "ExpiringLeaseSuite is for schedulers whose leases have a ttl"

        pace = threading.Event()  # never set: only paces the renewals
        end = time.monotonic() + 2 * lease.ttl
        while time.monotonic() < end:
            assert first.acquire("leader-renewed", "node-0") is not None, "the holder lost a renewed lease"
            assert second.acquire("leader-renewed", "node-1") is None, "another node took a renewed lease"
            pace.wait(lease.ttl / 4)
        first.release("leader-renewed", "node-0")
