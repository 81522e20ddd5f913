"""The package's logger: one ``actorflow`` logger; the application configures logging.

Adapters log under children of it (``actorflow.postgres``, ``actorflow.adapters.sqlite``...),
so one ``logging.getLogger("actorflow")`` setting covers the whole library.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import MutableMapping
from typing import Any

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "logger", "with_context", "workflow_logger"]

# The attributes a record may carry (``extra=``) that say which run, workflow or role it
# concerns; the JSON formatter writes each one present as a field of its own.
CONTEXT_FIELDS = ("workflow", "process_name", "run_id", "foreign_id", "status", "role", "node")

logger = logging.getLogger("actorflow")
logger.addHandler(logging.NullHandler())  # a library: never print unless the application says so


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for log collectors (``actorflow run --log-format json``).

    Fields: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, each of
    `CONTEXT_FIELDS` the record carries, and ``exception`` (the formatted traceback) when
    there is one. Values that JSON cannot hold are written as their ``str``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


WorkflowLogger = logging.Logger | logging.LoggerAdapter[Any]


class _MergingAdapter(logging.LoggerAdapter[Any]):
    """A plain adapter's context merged with each record's own ``extra`` (the run's fields stay)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def workflow_logger(given: WorkflowLogger | None) -> WorkflowLogger:
    """Where a workflow logs: ``given`` (the builder's ``logger``), else the ``actorflow`` logger.

    A plain `logging.LoggerAdapter` replaces a record's ``extra`` with its own (before
    Python 3.13), which would drop the run's fields (`CONTEXT_FIELDS`): its context is
    merged with them instead. An adapter subclass with its own ``process`` is used as is.
    """
    if given is None:
        return logger
    if isinstance(given, logging.LoggerAdapter) and type(given).process is logging.LoggerAdapter.process:
        return _MergingAdapter(given.logger, given.extra)
    return given


def with_context(base: WorkflowLogger, **fields: Any) -> logging.LoggerAdapter[Any]:
    """``base`` with ``fields`` (some of `CONTEXT_FIELDS`) on every record, merged with each call's own ``extra``."""
    return _MergingAdapter(base, fields)
