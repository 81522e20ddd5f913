"""Fixtures for the runtime tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from tests.model import Item, Stage, two_steps


@pytest.fixture
def make_workflow() -> Callable[..., af.Workflow[Item, Stage]]:
    """A two-step workflow on fresh memory adapters (or the ones given)."""

    def make(name: str = "wf", **adapters: Any) -> af.Workflow[Item, Stage]:
        return two_steps(name).build(
            adapters.get("streamer") or MemoryEventStreamer(),
            adapters.get("store") or MemoryRecordStore(),
            adapters.get("scheduler") or MemoryRoleScheduler(),
        )

    return make
