"""Cron specs: five fields (via cronsim), the original's descriptors, and ``@every <duration>``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError

from actorflow.errors import ActorflowError

__all__ = ["CronError", "parse"]

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

NextFunc = Callable[[datetime], datetime]


class CronError(ActorflowError, ValueError):
    """The schedule spec is not valid."""


def _parse_duration(text: str) -> timedelta:
    """A Go-style duration (``1h30m``, ``10s``, ``250ms``)."""
    pos = 0
    seconds = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        msg = f"invalid duration {text!r}: use e.g. 1h30m, 10s, 250ms"
        raise CronError(msg)
    if seconds <= 0:
        msg = f"@every needs a duration greater than 0, got {text!r}"
        raise CronError(msg)
    return timedelta(seconds=seconds)


def parse(spec: str) -> NextFunc:
    """A function giving the first slot strictly after a time; `CronError` on a bad spec."""
    text = spec.strip()
    if text.startswith("@every"):
        step = _parse_duration(text[len("@every") :].strip())
        return lambda last: last + step
    expr = _DESCRIPTORS.get(text, text)
    if expr.startswith("@"):
        msg = f"unknown cron descriptor {spec!r}"
        raise CronError(msg)
    try:
        CronSim(expr, datetime(2000, 1, 1))  # noqa: DTZ001 - validation only
    except (CronSimError, ValueError) as exc:
        msg = f"invalid cron spec {spec!r}: {exc}"
        raise CronError(msg) from exc

    def following(last: datetime) -> datetime:
        start = last.replace(second=0, microsecond=0)
        slot: datetime = next(CronSim(expr, start))
        return slot

    return following
