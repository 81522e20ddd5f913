"""State one node's actors share: process states, threads, and who to tell what.

Only small, lock-protected facts live here; all decisions are made by actors.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from actorflow.runtime.state import ProcessState

if TYPE_CHECKING:
    import pykka

    from actorflow.metrics import Metrics
    from actorflow.runtime.restart import RestartPolicy

__all__ = ["TICK_BUDGET", "Node"]

# The longest an actor blocks in one tick: a stop or a lost role is seen within it.
TICK_BUDGET = 0.2


class Node:
    """Shared facts of one supervisor's node."""

    def __init__(self, node_id: str, metrics: Metrics, policy: RestartPolicy) -> None:
        self.node_id = node_id
        self.metrics = metrics
        self.policy = policy
        self.stopping = False
        self.scheduler: pykka.ActorRef[Any] | None = None
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.scheduler_wake = threading.Event()
        self._lock = threading.Condition()
        self._states: dict[str, ProcessState] = {}
        self._failed: set[str] = set()
        self._subscribed: set[str] = set()
        self._held: dict[str, int] = {}  # role -> term of the lease this node holds
        self._processes: dict[str, Any] = {}  # process key -> the Process its actor drives
        # The role schedulers' health, as the scheduler actor saw it (monotonic times).
        self._scheduler_ok_until = float("inf")  # the last successful claim or heartbeat covers until then
        self._starved_since: float | None = None  # holding no role while roles it may work are unclaimed
        self._threads: list[threading.Thread] = []

    # -- states ---------------------------------------------------------------------------

    def set_state(self, key: str, state: ProcessState, gauge: Any = None) -> None:
        """Record a process's state (FAILED sticks until `clear_failed`)."""
        with self._lock:
            if key in self._failed and state in (ProcessState.IDLE, ProcessState.RUNNING):
                state = ProcessState.FAILED
            self._states[key] = state
        if gauge is not None:
            gauge.set(int(state))

    def mark_failed(self, key: str) -> None:
        """The process crashed past its restart intensity."""
        with self._lock:
            self._failed.add(key)
            self._states[key] = ProcessState.FAILED

    def clear_failed(self, key: str) -> bool:
        """The process has run stably again; True if it was marked failed."""
        with self._lock:
            if key not in self._failed:
                return False
            self._failed.discard(key)
            if self._states.get(key) is ProcessState.FAILED:
                self._states[key] = ProcessState.RUNNING
            return True

    def states(self) -> dict[str, ProcessState]:
        """A copy of every process's state."""
        with self._lock:
            return dict(self._states)

    def forget(self, key: str) -> None:
        """Drop a process that no longer exists."""
        with self._lock:
            self._states.pop(key, None)
            self._failed.discard(key)
            self._subscribed.discard(key)

    # -- subscriptions ------------------------------------------------------------------

    def subscribed(self, key: str) -> None:
        """The scheduler has registered the process's role."""
        with self._lock:
            self._subscribed.add(key)
            self._lock.notify_all()

    def wait_subscribed(self, keys: set[str], timeout: float) -> set[str]:
        """Wait until every key subscribed; returns those that did not in time."""
        with self._lock:
            self._lock.wait_for(lambda: keys <= self._subscribed, timeout)
            return keys - self._subscribed

    # -- processes ----------------------------------------------------------------------

    def register(self, key: str, process: Any) -> None:
        """Note the process an actor drives (to name what it is doing if it will not stop)."""
        with self._lock:
            self._processes[key] = process

    def in_hand(self, key: str) -> str | None:
        """What the process of ``key`` is working on now, if it says (read from another thread)."""
        with self._lock:
            process = self._processes.get(key)
        return None if process is None else process.in_hand

    def wake_all(self) -> None:
        """Cut every process's tick in progress short (on stop: each actor takes its stop message now)."""
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            process.wake()

    # -- scheduler health ---------------------------------------------------------------

    def scheduler_answered(self, valid_for: float) -> None:
        """A claim or heartbeat succeeded; it vouches for the node for ``valid_for`` seconds more."""
        with self._lock:
            self._scheduler_ok_until = time.monotonic() + valid_for

    def starving(self, *, starved: bool) -> None:
        """Whether the node holds no role while roles it may work are unclaimed (a fleet heartbeat says)."""
        with self._lock:
            if not starved:
                self._starved_since = None
            elif self._starved_since is None:
                self._starved_since = time.monotonic()

    def scheduler_trouble(self, patience: float) -> str | None:
        """Why the node's role scheduling is unhealthy now (None when it is not)."""
        now = time.monotonic()
        with self._lock:
            if now > self._scheduler_ok_until:
                return f"the role scheduler has not answered for {now - self._scheduler_ok_until:.1f}s past a lease"
            if self._starved_since is not None and now - self._starved_since > patience:
                return f"holding no role for {now - self._starved_since:.1f}s while roles it may work are unclaimed"
        return None

    # -- roles held ---------------------------------------------------------------------

    def hold(self, role: str, term: int) -> None:
        """Record that the node holds ``role`` under ``term`` (the scheduler actor says so)."""
        with self._lock:
            self._held[role] = term

    def unhold(self, role: str) -> None:
        """Record that the node no longer holds ``role``."""
        with self._lock:
            self._held.pop(role, None)

    def held(self) -> dict[str, int]:
        """The roles this node holds, with their lease terms."""
        with self._lock:
            return dict(sorted(self._held.items()))

    # -- threads ------------------------------------------------------------------------

    def add_thread(self, thread: threading.Thread) -> None:
        """Remember an actor's thread, to join it on stop."""
        with self._lock:
            self._threads.append(thread)

    def threads(self) -> list[threading.Thread]:
        """Every thread started for this node."""
        with self._lock:
            return list(self._threads)
