"""What the crash tests share: kill a child node process part-way through its work."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any


def kill_part_way(node: subprocess.Popen[Any], progress: Callable[[], int], at: int, *, timeout: float = 60.0) -> None:
    """SIGKILL ``node`` once ``progress()`` (runs completed) reaches ``at``; reap it whatever happens.

    Fails when the node exits first or does not get there within ``timeout`` seconds.
    """
    try:
        deadline = time.monotonic() + timeout
        while (done := progress()) < at:
            assert node.poll() is None, node.communicate()
            assert time.monotonic() < deadline, f"only {done} runs completed in {timeout:.0f} s"
            time.sleep(0.005)
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=10)
    finally:
        node.kill()
        node.communicate()
