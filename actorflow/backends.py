"""Named adapter stacks for the command line (``--backend memory|sqlite|postgres``).

Adapters are imported by name at run time: the core never imports an adapter module
statically, so it keeps working without the optional extras.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from actorflow.clock import Clock
from actorflow.protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore

__all__ = ["BACKENDS", "Backend", "make_backend"]

BACKENDS = ("memory",)


@dataclasses.dataclass(frozen=True)
class Backend:
    """The adapters one workflow is built on."""

    event_streamer: EventStreamer
    record_store: RecordStore
    role_scheduler: RoleScheduler
    timeout_store: TimeoutStore


def _module(name: str) -> Any:
    return importlib.import_module(f"actorflow.adapters.{name}")


def make_backend(name: str, *, path: str | None = None, dsn: str | None = None, clock: Clock | None = None) -> Backend:
    """Fresh adapters of the backend ``name``."""
    if name == "memory":
        memory = _module("memory")
        return Backend(
            memory.MemoryEventStreamer(clock=clock),
            memory.MemoryRecordStore(),
            memory.MemoryRoleScheduler(),
            memory.MemoryTimeoutStore(),
        )
    msg = f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)} (path={path!r}, dsn={dsn!r})"
    raise ValueError(msg)
