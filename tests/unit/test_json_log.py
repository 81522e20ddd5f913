"""`JsonFormatter`: one JSON object per record, with the run's context and the traceback."""

from __future__ import annotations

import json
import logging
import sys

from actorflow.log import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("actorflow", logging.ERROR, __file__, 1, "step failed: %s", ("boom",), None)
    record.__dict__.update(extra)
    return record


def test_fields_and_context():
    entry = json.loads(JsonFormatter().format(_record(run_id="r", foreign_id="f", status=3, unrelated="x")))
    assert entry["message"] == "step failed: boom"
    assert (entry["level"], entry["logger"]) == ("ERROR", "actorflow")
    assert (entry["run_id"], entry["foreign_id"], entry["status"]) == ("r", "f", 3)
    assert "unrelated" not in entry


def test_a_traceback_and_values_json_cannot_hold():
    try:
        raise ValueError("bad")
    except ValueError:
        record = _record(run_id=object())
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: bad" in entry["exception"]
    assert entry["run_id"].startswith("<object object")


def test_no_context_field_is_an_attribute_every_log_record_has():
    """logging refuses ``extra`` keys that a LogRecord has itself (``process`` is its pid)."""
    from actorflow.log import CONTEXT_FIELDS

    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert not [field for field in CONTEXT_FIELDS if field in plain.__dict__ or field in ("message", "asctime")]
