"""The engine: the internal middle that the `Workflow` facade and every process share.

Nothing here is public API. `Engine` (``core``) holds a workflow's config, adapters and
their capabilities; `Transitions` derive records without I/O; the failure rule
(``failures``) decides retry or pause; `Writer` is the one write path; ``watch`` wakes
``await_status``; ``actions`` are what the facade's public methods do.
"""

from .config import WorkflowConfig
from .core import Capabilities, Engine, Failed, Host
from .failures import AUTO_PAUSE_REASON, CORRUPT_PAUSE_REASON, ErrorCounts, error_key, reached_limit
from .handoff import HANDED_EVENT_ID, Handoff
from .transitions import Transitions, Write
from .watch import Waiter, WatchRegistry
from .writer import Writer

__all__ = [
    "AUTO_PAUSE_REASON",
    "CORRUPT_PAUSE_REASON",
    "HANDED_EVENT_ID",
    "Capabilities",
    "Engine",
    "ErrorCounts",
    "Failed",
    "Handoff",
    "Host",
    "Transitions",
    "Waiter",
    "WatchRegistry",
    "WorkflowConfig",
    "Write",
    "Writer",
    "error_key",
    "reached_limit",
]
