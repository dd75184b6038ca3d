"""Structured logs: one JSON object per line on stderr.

Records carry their fields in ``extra={"fields": {...}}``. Exceptions are logged by type only
(their messages and tracebacks may hold anything, values included) unless
``PIPELINE_SECRETS_DEBUG`` is set.

The per-request line does not go through ``logging``: building a LogRecord (the caller's frame,
the thread, the process), the handler's lock and a write and flush per line were the largest
share of a cached lookup's own cost. ``request_line`` formats the same JSON object directly and
appends it to a buffer that is written once per event-loop turn (``loop.call_soon``), or at once
past ``FLUSH_BYTES``. Every other record flushes the buffer before its own line, so lines stay
whole and in order, and each reaches the file within the loop turn that wrote it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import threading
import time
from typing import IO, Any

LOGGER_NAME = "pipeline_secrets.web"
log = logging.getLogger(LOGGER_NAME)
FLUSH_BYTES = 64 * 1024  # request lines buffered past this are written at once


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


class JsonLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler of every record, and the buffer of the request lines written on the loop."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()  # records come from worker threads too

    def add(self, line: str) -> None:
        """Queue one line (with its newline); written within this loop turn."""
        with self._pending_lock:
            first = not self._pending
            self._pending.append(line)
            self._pending_bytes += len(line)
            full = self._pending_bytes >= FLUSH_BYTES
        if full:
            self.write_pending()
        elif first:
            try:
                asyncio.get_running_loop().call_soon(self.write_pending)
            except RuntimeError:  # no loop: nothing would ever flush it
                self.write_pending()

    def write_pending(self) -> None:
        if not self._pending:
            return
        self.acquire()  # the handler's own lock, as every record's write: one writer at a time, in order
        try:
            with self._pending_lock:
                text = "".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
            if text:
                self.stream.write(text)
                self.stream.flush()
        except Exception:  # as logging does: a log that cannot be written must not fail the request
            pass
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        self.write_pending()
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()


_lines: JsonLines | None = None
_ENCODE_LINE = json.JSONEncoder(ensure_ascii=False, default=str).encode  # json.dumps builds one per call


def configure(stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr): ours and uvicorn's at INFO, everything else at WARNING
    (botocore's debug output would hold request bodies)."""
    global _lines
    handler = JsonLines(stream or sys.stderr)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.flush()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in (LOGGER_NAME, "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").disabled = True  # we write our own request line
    _lines = handler


def flush_request_lines() -> None:
    """Write the request lines waiting for the end of the loop turn now."""
    if _lines is not None:
        _lines.write_pending()


def event(message: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, message, extra={"fields": fields})


def request_line(level: int, fields: dict[str, Any]) -> None:
    """The line of one answered request: the JSON object ``event("request", level, **fields)``
    would write, through the loop turn's buffer (see the module's docstring)."""
    lines = _lines
    if lines is None or not log.isEnabledFor(level):  # not configured (a test's app): plain logging
        log.log(level, "request", extra={"fields": fields})
        return
    # {"time": ..., "level": ..., "logger": ..., "message": "request", **fields} as json.dumps writes
    # it: the head is the same text every time, and the fields (short strings, numbers, null) are
    # written one by one, strings through JSON's own escaping; anything else through the encoder.
    parts = [f'{{"time": "{_utc_time(time.time())}", "level": "{_level_name(level)}", "logger": "{LOGGER_NAME}", '
             '"message": "request"']
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            text = _ESCAPE(value)
        elif kind is int or (kind is float and -_INF < value < _INF):
            text = repr(value)
        elif value is None:
            text = "null"
        else:
            text = _ENCODE_LINE(value)
        parts.append(f"{_ESCAPE(key)}: {text}")
    lines.add(", ".join(parts) + "}\n")


_ESCAPE = json.encoder.encode_basestring  # a str as JSON text, as json.dumps(ensure_ascii=False) writes it
_INF = float("inf")


@functools.lru_cache(maxsize=None)
def _level_name(level: int) -> str:
    return str(logging.getLevelName(level)).lower()
