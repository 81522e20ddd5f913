"""The servers tests need: skip without them locally, fail without them in CI.

`ACTORFLOW_REQUIRE_SERVICES=1` (set by ``.ci/run``) turns every skip for a missing
server into a failure, so CI never passes by skipping.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["REQUIRE_SERVICES", "unavailable"]

REQUIRE_SERVICES = os.environ.get("ACTORFLOW_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip a test that needs a server, unless CI demands the servers (then fail)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"ACTORFLOW_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)
