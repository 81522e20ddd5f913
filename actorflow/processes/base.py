"""The shape of a background process, as its actor drives it.

An actor calls `start` when its node gains the process's role, `tick` repeatedly while it
holds it (each tick blocks at most ``budget`` seconds, so a stop or a lost role is seen
within one tick), and `stop` when the role is lost or the node stops. An exception out
of a tick is an infrastructure failure: the actor crashes and its supervisor restarts
it with back-off. User errors never escape a tick.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actorflow.clock import wake_clock
from actorflow.log import with_context
from actorflow.options import ResolvedOptions

if TYPE_CHECKING:
    from actorflow.engine import Engine
    from actorflow.metrics import ProcessMetrics
    from actorflow.protocols import Fence

__all__ = ["Process"]

_RUNS_SHOWN = 5  # run ids a refused batch's log line names


class Process(abc.ABC):
    """One background process of a workflow (a step shard, the outbox relay, a hook...)."""

    def __init__(
        self,
        engine: Engine[Any, Any],
        name: str,
        role: str,
        options: ResolvedOptions,
        metrics: ProcessMetrics,
    ) -> None:
        self.engine = engine
        self.name = name
        self.role = role
        self.options = options
        self.metrics = metrics
        self.valid_until: float | None = None
        # The node's lease on the role, which the role's writes carry (None: the scheduler keeps no terms).
        self.fence: Fence | None = None
        # What the process is doing now, for the log if it does not stop ("run X at Y"); None when idle.
        self.in_hand: str | None = None
        self._retry_at = 0.0
        self._woken = threading.Event()  # set by wake(): the tick in progress returns

    def holding(self) -> bool:
        """True while the node's lease on the role is still valid."""
        return self.valid_until is None or time.monotonic() < self.valid_until

    @property
    def term(self) -> int:
        """The term of the node's lease on the role (0 when the scheduler keeps none)."""
        return 0 if self.fence is None else self.fence.term

    @property
    def log(self) -> logging.LoggerAdapter[Any]:
        """The workflow's logger with this process's context on every record: workflow, process, role, node."""
        return with_context(
            self.engine.log, workflow=self.engine.name, process_name=self.name, role=self.role, node=self.node_id
        )

    @property
    def node_id(self) -> str:
        """The node working the role, as its lease names it (for logs)."""
        return "this node" if self.fence is None else self.fence.node_id

    def fenced_out(self, run_ids: Sequence[str]) -> None:
        """The store refused the writes for ``run_ids``: the role passed to another node, which redoes them.

        Stops working the role at once, as if the lease had run out; the scheduler gives
        it back only if this node holds it again (under a new term).
        """
        shown = ", ".join(run_ids[:_RUNS_SHOWN])
        if len(run_ids) > _RUNS_SHOWN:
            shown += f" and {len(run_ids) - _RUNS_SHOWN} more"
        self.log.warning(
            "%s/%s on node %s: role %s passed to another node (this node's term %d): "
            "%d write(s) refused, redone there (runs %s)",
            self.engine.name,
            self.name,
            self.node_id,
            self.role,
            self.term,
            len(run_ids),
            shown,
        )
        self.metrics.fenced.inc(len(run_ids))
        self.valid_until = time.monotonic()

    def start(self) -> None:  # noqa: B027 - optional hook
        """The role was granted: open what the process needs."""

    @abc.abstractmethod
    def tick(self, budget: float) -> None:
        """Do a bounded unit of work, blocking at most ``budget`` seconds."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """The role was lost or the node stops: release everything (idempotent)."""

    def observe_lag(self, age: float) -> None:
        """Report how old the event being handled is (seconds), and whether that is past the alert."""
        self.metrics.lag.set(age)
        if self.options.lag_alert > 0:
            self.metrics.lag_alert.set(1 if age > self.options.lag_alert else 0)

    def back_off(self, seconds: float) -> None:
        """Pause this process's work for ``seconds`` (a failed event waits, holding its place)."""
        self._retry_at = time.monotonic() + seconds

    def backing_off(self, budget: float) -> bool:
        """Wait out (part of) a back-off; True while it is not over yet."""
        remaining = self._retry_at - time.monotonic()
        if remaining <= 0:
            return False
        if self._woken.wait(min(remaining, budget)):
            self._woken.clear()
        return self._retry_at > time.monotonic()

    def wake(self) -> None:
        """Cut the tick in progress short (any thread; the node calls it when it stops).

        The waits of a tick (a receive, the clock, a back-off) return at once, so the
        actor takes its stop message now instead of after the tick's budget.
        """
        self._woken.set()
        wake_clock(self.engine.clock)

    def woken(self) -> bool:
        """Whether `wake` was called since this was last asked (a looping tick then returns)."""
        if self._woken.is_set():
            self._woken.clear()
            return True
        return False

    def debug(self, message: str, **fields: object) -> None:
        """Log at DEBUG when the workflow was built with ``debug=True``."""
        if self.engine.config.debug:
            self.log.debug("%s %s: %s %s", self.engine.name, self.name, message, fields)
