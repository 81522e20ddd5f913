"""Names that moved: the old spelling keeps working, with a `DeprecationWarning`, until removal.

A module that gave a name away keeps ``__getattr__ = moved_names(__name__, {...})``; the
new home is imported by name only when an old spelling is used, so a deprecated alias
never ties the old module to the new one at import time.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["REMOVED_IN", "moved_names"]

REMOVED_IN = "0.3"


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving each name of ``moved`` in its new module, with a warning."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - it is the module's __getattr__
        target = moved.get(name)
        if target is None:
            msg = f"module {module!r} has no attribute {name!r}"
            raise AttributeError(msg)
        warnings.warn(
            f"{module}.{name} moved to {target}.{name}; the old name will be removed in actorflow {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(target), name)

    return __getattr__
