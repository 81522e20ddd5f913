"""actorflow: durable, event-driven workflows for Python, on a supervised actor runtime.

A workflow is a typed state machine: a dataclass object, an IntEnum of statuses and a
function per step. Every transition is stored and published as an event, and the next
step runs on whichever node holds that step's role.

This module is the user's API. Adapter authors find their contracts in
`actorflow.protocols` (what every adapter does) and `actorflow.capabilities` (what an
adapter may do better); the conformance suites are in `actorflow.testing.adaptertest`.
"""

from __future__ import annotations

from actorflow._deprecation import moved_names
from actorflow._version import VERSION
from actorflow.builder import Builder
from actorflow.clock import Clock, FakeClock, SystemClock
from actorflow.codec import Codec, JsonCodec
from actorflow.errors import (
    ActorflowError,
    AwaitTimeout,
    BuildError,
    CodecError,
    CorruptRecord,
    InvalidCursor,
    InvalidForeignId,
    InvalidRunStateTransition,
    InvalidTimeout,
    InvalidTransition,
    NotRunning,
    ObjectTooLarge,
    ObjectTypeError,
    RecordNotFound,
    StaleTerm,
    StatusTypeError,
    StepError,
    StepTimeout,
    TimeoutNotFound,
    UnknownStatus,
    VersionConflict,
    WorkflowInProgress,
)
from actorflow.event import ConnectorEvent, shard_of
from actorflow.options import Options, OutboxOptions
from actorflow.protocols import RecordFilter
from actorflow.record import Record, RecordMeta, Run, TypedRecord
from actorflow.runstate import RunState
from actorflow.runtime.restart import RestartPolicy
from actorflow.runtime.state import ProcessState
from actorflow.runtime.supervisor import Supervisor
from actorflow.specs import TimerFunc, duration_timer, time_timer
from actorflow.visualise import mermaid
from actorflow.workflow import Workflow

__version__ = VERSION

# Declaring and running workflows.
__all__ = [
    "Builder",
    "Options",
    "OutboxOptions",
    "Supervisor",
    "Workflow",
]

# What steps, hooks and callers see.
__all__ += [
    "ConnectorEvent",
    "Record",
    "RecordFilter",
    "RecordMeta",
    "Run",
    "RunState",
    "TypedRecord",
]

# Time, timers, codecs.
__all__ += [
    "Clock",
    "Codec",
    "FakeClock",
    "JsonCodec",
    "SystemClock",
    "TimerFunc",
    "duration_timer",
    "time_timer",
]

# The runtime.
__all__ += [
    "ProcessState",
    "RestartPolicy",
]

# Errors.
__all__ += [
    "ActorflowError",
    "AwaitTimeout",
    "BuildError",
    "CodecError",
    "CorruptRecord",
    "InvalidCursor",
    "InvalidForeignId",
    "InvalidRunStateTransition",
    "InvalidTimeout",
    "InvalidTransition",
    "NotRunning",
    "ObjectTooLarge",
    "ObjectTypeError",
    "RecordNotFound",
    "StaleTerm",
    "StatusTypeError",
    "StepError",
    "StepTimeout",
    "TimeoutNotFound",
    "UnknownStatus",
    "VersionConflict",
    "WorkflowInProgress",
]

# Tools.
__all__ += [
    "__version__",
    "mermaid",
    "shard_of",
]

# Adapter-author names exported here before 0.2: they live in actorflow.protocols now.
__getattr__ = moved_names(
    __name__,
    dict.fromkeys(
        [
            "ConnectorConstructor",
            "ConnectorConsumer",
            "Event",
            "EventReceiver",
            "EventSender",
            "EventStreamer",
            "Header",
            "Lease",
            "OutboxEvent",
            "ReceiverOptions",
            "RecordStore",
            "RoleScheduler",
            "TimeoutRecord",
            "TimeoutStore",
            "make_outbox_event",
        ],
        "actorflow.protocols",
    ),
)
