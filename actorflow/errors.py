"""The error hierarchy: one root, leaves named after the condition.

Every error explains itself: when raised without a message, the class docstring's first
line is the message. Structured fields (``run_id``, ``status``...) are attributes, so a
caller can act on them without parsing text.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorflowError",
    "AwaitTimeout",
    "BuildError",
    "CodecError",
    "ConnectorError",
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


class ActorflowError(Exception):
    """An actorflow operation failed."""

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        if message is None:
            doc = type(self).__doc__ or type(self).__name__
            message = doc.strip().splitlines()[0]
        super().__init__(message)
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)


class RecordNotFound(ActorflowError, LookupError):
    """Record not found."""

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        if message is None and fields.get("run_id") is not None:
            message = f"no run {fields['run_id']}"
        elif message is None and fields.get("foreign_id") is not None:
            where = f" of {fields['workflow_name']}" if fields.get("workflow_name") else ""
            message = f"no run{where} for foreign id {fields['foreign_id']!r}"
        super().__init__(message, **fields)


class CorruptRecord(ActorflowError, ValueError):
    """A stored row could not be read as a record or event (corrupted or foreign data)."""


class TimeoutNotFound(ActorflowError, LookupError):
    """Timeout not found."""


class InvalidTimeout(ActorflowError, ValueError):
    """A timeout's index or record version is not a valid number (nothing was stored)."""


class WorkflowInProgress(ActorflowError):
    """Current workflow still in progress - retry once complete."""


class VersionConflict(ActorflowError):
    """The record was modified since it was read (optimistic concurrency check failed)."""


class StaleTerm(ActorflowError):
    """A write was refused: the role it was made for has passed to another node since (fencing)."""


class InvalidTransition(ActorflowError, ValueError):
    """The transition is not in the workflow's graph."""


class InvalidRunStateTransition(ActorflowError, ValueError):
    """The run-state change is not allowed from the run's current state."""


class UnknownStatus(ActorflowError, ValueError):
    """The status is not a node of the workflow's graph."""


class InvalidCursor(ActorflowError, ValueError):
    """A page cursor that the store did not hand out (`RecordPages.page`)."""


class InvalidForeignId(ActorflowError, ValueError, TypeError):
    """A foreign id outside the rule every store keeps (see `actorflow.record.check_foreign_id`)."""


class StatusTypeError(ActorflowError, TypeError):
    """A status was not of the workflow's status enum (another IntEnum's member, or not an int)."""


class BuildError(ActorflowError, ValueError):
    """The workflow definition is invalid."""


class CodecError(ActorflowError, ValueError):
    """The object could not be encoded or decoded."""


class ObjectTypeError(CodecError, TypeError):
    """The object is not of the workflow's declared type (its class, or a field's value against its type hint)."""


class ObjectTooLarge(ActorflowError, ValueError):
    """The encoded object (or a callback's payload) is over the workflow's ``max_object_bytes``."""


class StepError(ActorflowError):
    """A user function (step, callback, timeout) failed; the cause is chained."""


class StepTimeout(StepError, TimeoutError):
    """A step did not return within its ``step_timeout``: it was abandoned (its result will be discarded)."""


class ConnectorError(ActorflowError):
    """A connector event could not be handled."""


class NotRunning(ActorflowError, RuntimeError):
    """The workflow is not running: call ``wf.run()`` or host it in a started ``Supervisor``."""


class AwaitTimeout(ActorflowError, TimeoutError):
    """The run did not reach the awaited status in time."""
