"""actorflow: durable, event-driven workflows for Python, on a supervised actor runtime.

A workflow is a typed state machine: a dataclass object, an IntEnum of statuses and a
function per step. Every transition is stored and published as an event, and the next
step runs on whichever node holds that step's role.
"""

from actorflow.builder import Builder
from actorflow.clock import Clock, FakeClock, SystemClock
from actorflow.codec import Codec, JsonCodec
from actorflow.errors import (
    ActorflowError,
    AwaitTimeout,
    BuildError,
    CodecError,
    CorruptRecord,
    InvalidRunStateTransition,
    InvalidTransition,
    NotRunning,
    RecordNotFound,
    StepError,
    TimeoutNotFound,
    UnknownStatus,
    VersionConflict,
    WorkflowInProgress,
)
from actorflow.event import ConnectorEvent, Event, Header, OutboxEvent, make_outbox_event, shard_of
from actorflow.options import Options, OutboxOptions
from actorflow.protocols import (
    ConnectorConstructor,
    ConnectorConsumer,
    EventReceiver,
    EventSender,
    EventStreamer,
    Lease,
    ReceiverOptions,
    RecordFilter,
    RecordStore,
    RoleScheduler,
    TimeoutRecord,
    TimeoutStore,
)
from actorflow.record import Record, RecordMeta, Run, TypedRecord
from actorflow.runstate import RunState
from actorflow.runtime.restart import RestartPolicy
from actorflow.runtime.state import ProcessState
from actorflow.runtime.supervisor import Supervisor
from actorflow.specs import TimerFunc, duration_timer, time_timer
from actorflow.visualise import mermaid
from actorflow.workflow import Workflow

__version__ = "0.1.0"

__all__ = [
    "ActorflowError",
    "AwaitTimeout",
    "BuildError",
    "Builder",
    "Clock",
    "Codec",
    "CodecError",
    "ConnectorConstructor",
    "ConnectorConsumer",
    "ConnectorEvent",
    "CorruptRecord",
    "Event",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "FakeClock",
    "Header",
    "InvalidRunStateTransition",
    "InvalidTransition",
    "JsonCodec",
    "Lease",
    "NotRunning",
    "Options",
    "OutboxEvent",
    "OutboxOptions",
    "ProcessState",
    "ReceiverOptions",
    "Record",
    "RecordFilter",
    "RecordMeta",
    "RecordNotFound",
    "RecordStore",
    "RestartPolicy",
    "RoleScheduler",
    "Run",
    "RunState",
    "StepError",
    "Supervisor",
    "SystemClock",
    "TimeoutNotFound",
    "TimeoutRecord",
    "TimeoutStore",
    "TimerFunc",
    "TypedRecord",
    "UnknownStatus",
    "VersionConflict",
    "Workflow",
    "WorkflowInProgress",
    "__version__",
    "duration_timer",
    "make_outbox_event",
    "mermaid",
    "shard_of",
    "time_timer",
]
