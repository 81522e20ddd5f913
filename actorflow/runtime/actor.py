"""The actor that works one process while its node holds the process's role."""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import Any

import pykka

from actorflow.log import logger
from actorflow.processes.base import Process
from actorflow.protocols import Fence
from actorflow.runtime.messages import (
    ChildExited,
    ChildRecovered,
    HandOver,
    Released,
    RoleGranted,
    RoleLost,
    Subscribe,
    Tick,
    Unsubscribe,
)
from actorflow.runtime.node import TICK_BUDGET, Node
from actorflow.runtime.plan import ProcessPlan
from actorflow.runtime.state import ProcessState

__all__ = ["ProcessActor"]

_TICK = Tick()


class ProcessActor(pykka.ThreadingActor):
    """Drives a `Process`: start on RoleGranted, tick while holding, stop on RoleLost.

    Each tick ends by telling the actor the next Tick, so other messages (a lost role, a
    stop) are handled between ticks. A tick that raises crashes the actor; the
    supervisor is told and starts a fresh one after a back-off (``delay``).

    Its thread is a daemon: a user step that never returns is abandoned when the node
    stops (Python cannot interrupt a thread) and must not keep the process alive.
    """

    use_daemon_thread = True

    def __init__(self, plan: ProcessPlan, node: Node, delay: float = 0.0) -> None:
        super().__init__()
        self.plan = plan
        self.node = node
        self.delay = delay
        self.metrics = node.metrics.process(plan.engine.name, plan.name)
        self.process: Process | None = None
        self._holding = False
        self._started = False
        self._ticking = False
        self._not_before = 0.0
        self._since = 0.0
        self._recovering = delay > 0  # started after a crash (the first start has no delay)

    def on_start(self) -> None:
        """Make the process and subscribe for its role."""
        self.node.add_thread(threading.current_thread())
        self._not_before = time.monotonic() + self.delay
        self._since = time.monotonic()
        try:
            self.process = self.plan.make(self.metrics)
        except Exception as exc:
            self._report(exc)
            raise
        self.node.register(self.plan.key, self.process)
        self.node.set_state(self.plan.key, ProcessState.IDLE, self.metrics.state)
        scheduler = self.node.scheduler
        if scheduler is not None:
            engine = self.plan.engine
            scheduler.tell(Subscribe(self.plan.role, engine.role_scheduler, self.actor_ref, engine.name))
            self.node.scheduler_wake.set()

    def on_receive(self, message: Any) -> None:
        """Handle a role change or a tick."""
        if isinstance(message, Tick):
            self._tick()
        elif isinstance(message, RoleGranted):
            self._holding = True
            if self.process is not None:
                self.process.valid_until = message.valid_until
                self.process.fence = Fence(self.plan.role, self.node.node_id, message.term) if message.term else None
            if not self._ticking:
                self._ticking = True
                self.actor_ref.tell(_TICK)
        elif isinstance(message, RoleLost):
            self._release()
        elif isinstance(message, HandOver):
            # Between ticks: the batch in hand is committed (or dropped) before the role goes.
            self._release()
            scheduler = self.node.scheduler
            if scheduler is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    scheduler.tell(Released(self.plan.role, self.actor_ref))

    def _tick(self) -> None:
        process = self.process
        if not self._holding or process is None:
            self._ticking = False
            return
        if not process.holding():
            logger.warning("%s: lease on role %s expired; stopping work", self.plan.key, self.plan.role)
            self._release()
            self._ticking = False
            return
        wait = self._not_before - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, TICK_BUDGET))
        else:
            if not self._started:
                process.start()
                self._started = True
                self.node.set_state(self.plan.key, ProcessState.RUNNING, self.metrics.state)
            process.tick(TICK_BUDGET)
            if self._recovering:  # a restart's first good tick: the supervisor's one recovery line
                self._recovering = False
                self._tell_supervisor(ChildRecovered(self.plan.key))
            stable = time.monotonic() - self._since >= self.node.policy.stable_after
            if stable and self.node.clear_failed(self.plan.key):
                self.metrics.failed.set(0)
        self.actor_ref.tell(_TICK)

    def _release(self) -> None:
        self._holding = False
        if self._started and self.process is not None:
            self._started = False
            self.process.stop()
        if not self.node.stopping:
            self.node.set_state(self.plan.key, ProcessState.IDLE, self.metrics.state)

    def on_stop(self) -> None:
        """Stopped: release the process; tell the supervisor if nobody asked for this."""
        self._release()
        self.node.set_state(self.plan.key, ProcessState.SHUTDOWN, self.metrics.state)
        self._unsubscribe()
        if not self.node.stopping:
            self._report(None)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,  # noqa: ARG002 - pykka's signature
        exception_value: BaseException | None,
        traceback: TracebackType | None,  # noqa: ARG002 - pykka's signature
    ) -> None:
        """Crashed: release what we can and let the supervisor restart the process."""
        try:
            self._release()
        except Exception:  # noqa: BLE001 - already failing; the restart cleans up
            logger.exception("%s: error while releasing after a crash", self.plan.key)
        self._unsubscribe()
        self._report(exception_value or RuntimeError("actor failed"))

    def _unsubscribe(self) -> None:
        scheduler = self.node.scheduler
        if scheduler is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                scheduler.tell(Unsubscribe(self.plan.role, self.actor_ref))

    def _report(self, error: BaseException | None) -> None:
        self._tell_supervisor(ChildExited(self.plan.key, error))

    def _tell_supervisor(self, message: ChildExited | ChildRecovered) -> None:
        supervisor = self.node.supervisor
        if supervisor is not None and not self.node.stopping:
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(message)
