"""Topic and role names, exactly as the original spells them (so Go services interoperate)."""

from __future__ import annotations

import functools

__all__ = [
    "delete_topic",
    "make_role",
    "run_state_change_topic",
    "topic",
    "topic_prefix",
]


def _clean(name: str) -> str:
    return name.replace(" ", "_")


# Cached: every event names its topic, and one string per topic is enough.
@functools.lru_cache(maxsize=4096)
def topic(workflow_name: str, status: int) -> str:
    """The status topic ``<workflow>-<status int>`` (spaces become ``_``, case kept)."""
    return f"{_clean(workflow_name)}-{int(status)}"


@functools.lru_cache(maxsize=1024)
def run_state_change_topic(workflow_name: str) -> str:
    """The topic of run-state changes: ``<workflow>-run-state-change``."""
    return f"{_clean(workflow_name)}-run-state-change"


def topic_prefix(workflow_name: str) -> str:
    """What every topic of the workflow starts with: ``<workflow>-``."""
    return f"{_clean(workflow_name)}-"


def delete_topic(workflow_name: str) -> str:
    """The topic of data-deletion requests: ``<workflow>-delete``."""
    return f"{_clean(workflow_name)}-delete"


def make_role(*parts: str | int) -> str:
    """A role or process name: parts joined with ``-``, lower-cased, spaces become ``_``."""
    return "-".join(str(p) for p in parts).lower().replace(" ", "_")
