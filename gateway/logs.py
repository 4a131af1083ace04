"""Structured log lines: logfmt for people (default) or JSON for collectors.

Callers pass fields with ``extra={"fields": {...}}``; every line carries an ISO
time, the level and the logger name, so a refusal can be traced to an IP and a
moment without parsing free text.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from typing import Any

import orjson


def _stamp(record: logging.LogRecord) -> str:
    return _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds")


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-._:/@+" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"time={_stamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_logfmt_value(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if fields:
            parts.extend(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _stamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the ``uvgate`` loggers (the CLI calls this; embedders may not)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger("uvgate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
