"""Structured logs: one JSON object per line on stderr.

Records carry their fields in ``extra={"fields": {...}}``. Exceptions are logged by type only
(their messages and tracebacks may hold anything, values included) unless
``PIPELINE_SECRETS_DEBUG`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

LOGGER_NAME = "pipeline_secrets.web"
log = logging.getLogger(LOGGER_NAME)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text (one tuple: atomic)


def _utc_time(created: float) -> str:
    """``2026-12-01T12:00:00.123Z``; the seconds part is formatted once a second (datetime's
    isoformat was most of a request line's cost)."""
    global _second
    whole = int(created)
    second = _second
    if second[0] != whole:
        second = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{second[1]}.{int((created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            if os.environ.get("PIPELINE_SECRETS_DEBUG"):
                entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr): ours and uvicorn's at INFO, everything else at WARNING
    (botocore's debug output would hold request bodies)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in (LOGGER_NAME, "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").disabled = True  # we write our own request line


def event(message: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, message, extra={"fields": fields})
