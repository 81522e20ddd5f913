"""In-memory adapters: thread-safe, push-based, for tests, demos and single-process use.

Nothing survives the process; use the SQLite or PostgreSQL adapters for durability.
"""

from .connector import MemoryConnector
from .recordstore import MemoryRecordStore
from .rolescheduler import MemoryRoleScheduler
from .streamer import MemoryEventStreamer
from .timeoutstore import MemoryTimeoutStore

__all__ = [
    "MemoryConnector",
    "MemoryEventStreamer",
    "MemoryRecordStore",
    "MemoryRoleScheduler",
    "MemoryTimeoutStore",
]
