"""Fixtures for the runtime tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from runtime_flows import Item, Status, two_step_builder

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


@pytest.fixture
def make_workflow() -> Callable[..., af.Workflow[Item, Status]]:
    """A two-step workflow on fresh memory adapters (or the ones given)."""

    def make(name: str = "wf", **adapters: Any) -> af.Workflow[Item, Status]:
        return two_step_builder(name).build(
            adapters.get("streamer") or MemoryEventStreamer(),
            adapters.get("store") or MemoryRecordStore(),
            adapters.get("scheduler") or MemoryRoleScheduler(),
        )

    return make
