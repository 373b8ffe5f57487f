"""Logs of every Vireo process (API, worker, sandbox service): one line per event, JSON or text.

`VIREO_LOG_FORMAT=json` writes one JSON object per line, for a log pipeline: `time`, `level`, `logger`,
`message` and the event's own fields (a request's `request_id`, `path`, `status`...; a job's `job_id`,
`app`, `status`...). `text`, for a terminal, writes the same fields as `key=value` after the message.
`VIREO_LOG_LEVEL` sets the level of every logger, Celery's and uvicorn's included (docs/OPERATIONS.md).
"""

from __future__ import annotations

import json
import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# attributes every LogRecord has (or that libraries add for themselves); anything else is an event field
_RECORD_ATTRS = frozenset(RESERVED_ATTRS) | {"taskName", "color_message"}
# Celery's per-task lines ("Task ... received", "... succeeded in 0.4s") repeat what the job line says
_CHATTY = ("celery.worker.strategy", "celery.app.trace")


def event_fields(record: logging.LogRecord) -> dict:
    """The fields a caller passed with `extra=`."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`; values with spaces or quotes are JSON-quoted."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {k}={_text(v)}" for k, v in event_fields(record).items() if v is not None)
        return super().formatMessage(record) + fields


def _text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if text and not any(c in text for c in ' "=\n\t') else json.dumps(text)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    return TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure_logging(level: str | int, log_format: str) -> None:
    """One handler on the root logger (stderr) for every logger of the process; idempotent."""
    level_no = level if isinstance(level, int) else logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    logging.captureWarnings(True)  # warnings (Celery's "running as root", deprecations) as log lines too
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(level_no, logging.WARNING) if level_no > logging.DEBUG else level_no)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):  # through the root handler only
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
