"""The placeholder of a deleted object, shared by every codec (one constant, no import circle)."""

from __future__ import annotations

__all__ = ["DELETED_OBJECT"]

DELETED_OBJECT = b'{"result":"deleted"}'
"""What replaces a run's object when its data is deleted (the original's placeholder).

The JSON codec decodes it as the type's default object (as the original's zero value),
the one foreign JSON it accepts: a deleted run can still be read and awaited.
"""
