"""`WorkflowConfig`: everything a `Builder` decided about a workflow, frozen at build time."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from actorflow.capabilities import ErrorCounter
from actorflow.clock import Clock
from actorflow.codec import MAX_OBJECT_BYTES, Codec
from actorflow.graph import Graph
from actorflow.options import Options, OutboxOptions
from actorflow.runstate import RunState
from actorflow.specs import CallbackSpec, ConnectorSpec, HookFunc, StepSpec, TimeoutSpec

__all__ = ["WorkflowConfig"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


@dataclasses.dataclass(frozen=True)
class WorkflowConfig(Generic[T, S]):
    """Everything a builder decided (internal: the engine reads it, users never need it)."""

    name: str
    object_type: type[T]
    status_type: type[S]
    codec: Codec[T]
    graph: Graph
    steps: dict[int, StepSpec[T, S]]
    callbacks: dict[int, list[CallbackSpec[T, S]]]
    timeouts: dict[int, TimeoutSpec[T, S]]
    connectors: list[ConnectorSpec[T, S]]
    hooks: dict[RunState, HookFunc]
    defaults: Options
    outbox: OutboxOptions | None
    pause_retry: float | None
    custom_delete: Callable[[T], T] | None
    clock: Clock
    debug: bool
    default_start: int
    error_counter: ErrorCounter | None
    # The limit of an encoded object (the codec holds it) and of a callback payload; None: no limit.
    max_object_bytes: int | None = MAX_OBJECT_BYTES
    # Where the workflow's processes log (the original's WithLogger); None: the "actorflow" logger.
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None
    # An actorflow.otel.Tracing (build(tracing=...)), or None: not traced.
    tracing: Any = None
