"""The package's logger: one ``actorflow`` logger; the application configures logging.

Adapters log under children of it (``actorflow.postgres``, ``actorflow.adapters.sqlite``...),
so one ``logging.getLogger("actorflow")`` setting covers the whole library.
"""

from __future__ import annotations

import logging

__all__ = ["logger"]

logger = logging.getLogger("actorflow")
logger.addHandler(logging.NullHandler())  # a library: never print unless the application says so
