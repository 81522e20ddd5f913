"""Where a run was triggered from: a short summary of the caller's stack (``trace_origin``)."""

from __future__ import annotations

import inspect
import os

__all__ = ["trace_origin"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))  # noqa: PTH100, PTH120 - hot path
_MAX_FRAMES = 8
_MAX_CHARS = 4096


def trace_origin() -> str:
    """The caller's frames outside actorflow, innermost first, ``file:line in function``."""
    here = inspect.currentframe()  # cheaper than traceback.extract_stack
    frame = here.f_back if here is not None else None
    lines: list[str] = []
    while frame is not None and len(lines) < _MAX_FRAMES:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR):
            lines.append(f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        frame = frame.f_back
    return "\n".join(lines)[:_MAX_CHARS]
