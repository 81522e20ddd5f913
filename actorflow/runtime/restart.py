"""When to restart a crashed actor: exponential back-off with jitter, and an intensity limit.

The delays come from tenacity's exponential wait plus a random jitter. The attempt count resets once
an actor has run for ``stable_after`` seconds without crashing. More than
``max_restarts`` crashes within ``window`` seconds marks the process failed: it is still
restarted (so it recovers once, say, the database is back), but only at the longest
back-off, and the ``actorflow_process_failed`` gauge says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque

import tenacity

__all__ = ["RestartPolicy", "RestartTracker"]


@dataclasses.dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a supervisor restarts the actors of processes that crash.

    Attributes:
        initial: first back-off (seconds).
        maximum: longest back-off (seconds).
        jitter: up to this many random seconds are added to each back-off.
        stable_after: an actor that ran this long without crashing starts over at ``initial``.
        max_restarts: crashes allowed within ``window`` before the process is marked failed.
        window: the intensity window (seconds).
    """

    initial: float = 0.1
    maximum: float = 30.0
    jitter: float = 0.1
    stable_after: float = 30.0
    max_restarts: int = 5
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            msg = "RestartPolicy needs 0 < initial <= maximum"
            raise ValueError(msg)
        if self.max_restarts < 1 or self.window <= 0:
            msg = "RestartPolicy needs max_restarts >= 1 and window > 0"
            raise ValueError(msg)


class RestartTracker:
    """The crash history of one process."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        # wait_exponential + wait_random is wait_exponential_jitter without the API churn.
        self._wait = tenacity.wait_exponential(multiplier=policy.initial, max=policy.maximum) + tenacity.wait_random(
            0, policy.jitter
        )
        self._attempt = 0
        self._started = time.monotonic()
        self._crashes: deque[float] = deque()
        self.failed = False

    def started(self) -> None:
        """A new actor for the process started now."""
        self._started = time.monotonic()

    def crashed(self) -> float:
        """Record a crash; returns the back-off before the next start."""
        now = time.monotonic()
        if now - self._started >= self.policy.stable_after:
            self._attempt = 0
        self._attempt += 1
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.policy.window:
            self._crashes.popleft()
        self.failed = len(self._crashes) > self.policy.max_restarts
        if self.failed:
            return self.policy.maximum
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = self._attempt
        return float(self._wait(state))

    def stable(self) -> bool:
        """True once the current actor has run ``stable_after`` seconds."""
        return time.monotonic() - self._started >= self.policy.stable_after
