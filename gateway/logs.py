"""Structured log lines: logfmt for people (default) or JSON for collectors.

Callers pass fields with ``extra={"fields": {...}}``; every line carries an ISO
time, the level and the logger name, so a refusal can be traced to an IP and a
moment without parsing free text.

``setup_logging`` makes this the format of every line the process writes to stderr,
not only the ``uvgate.*`` loggers': third-party loggers (asyncio, aiohttp...) at
warning and above, ``warnings.warn`` (through ``py.warnings``), and exceptions that
would otherwise print a bare traceback (uncaught, in a thread, "Exception ignored").
A traceback is one field of one line (``exc``), never a block of lines a collector
would split into unparseable records.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import threading
from types import TracebackType
from typing import Any

import orjson

__all__ = ["JsonFormatter", "LogfmtFormatter", "setup_logging"]


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
        if record.exc_info:
            parts.append(f"exc={_logfmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


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


_crash_log = logging.getLogger("uvgate.process")


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    _crash_log.critical("uncaught exception", exc_info=(kind, exc, tb))


def _thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    _crash_log.error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _unraisable(info: Any) -> None:
    what = info.err_msg or "Exception ignored in"
    exc = info.exc_value
    _crash_log.warning(
        "%s: %r",
        what,
        info.object,
        exc_info=(info.exc_type, exc, info.exc_traceback) if exc is not None else None,
    )


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send every log line of the process to stderr in ``fmt`` (the CLI calls this).

    ``uvgate.*`` loggers log at ``level``; other libraries' loggers at warning and
    above (their info lines are not ours to show) unless ``level`` is debug.
    Embedders that configure logging themselves should not call it.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    ours = logging.getLogger("uvgate")
    ours.handlers[:] = [handler]
    ours.setLevel(level.upper())
    ours.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if level.lower() == "debug" else logging.WARNING)
    # warnings.warn(...) -> the "py.warnings" logger -> the root handler above.
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = _thread_uncaught
    sys.unraisablehook = _unraisable
