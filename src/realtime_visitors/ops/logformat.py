"""Log lines with a time and a level, as text or as JSON (RTV_LOG_FORMAT), for
uvicorn's lines and ours alike: `serve` hands `logging_config()` to uvicorn."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

# RTV_LOG_FORMAT's values (config.LOG_FORMATS).
TEXT, JSON = "text", "json"

_second: list[Any] = [-1, ""]


def iso_time(seconds: float) -> str:
    """UTC with milliseconds, as the API's own timestamps: 2026-11-27T13:31:52.768Z."""
    whole, millis = divmod(int(seconds * 1000), 1000)
    # A busy process writes many lines a second: the date is formatted once a second.
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-11-27T13:31:52.768Z INFO Started server process [4242]`"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{iso_time(record.created)} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One object per line: time, level, logger, message (and a traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def logging_config(log_format: str) -> dict[str, Any]:
    """logging.config's dictionary for `serve`: every logger's lines in one format on
    stderr, and uvicorn's access log off (ours, ops/accesslog.py, writes stdout)."""
    formatter = {"()": JsonFormatter if log_format == JSON else TextFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn looks these two names up when it is told to colour its lines.
        "formatters": {"default": formatter, "access": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "realtime_visitors": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
        # Any other library's lines: the same format, from WARNING up.
        "root": {"handlers": ["default"], "level": "WARNING"},
    }
