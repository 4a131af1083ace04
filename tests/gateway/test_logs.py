"""Every line ``uvgate serve`` writes to stderr follows ``log_format``: uvgate's loggers, the
http verifier, asyncio, ``warnings.warn`` and tracebacks (one field of one line)."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from gateway.logs import JsonFormatter, LogfmtFormatter
from tests.conftest import run_checked
from tests.served import Program, free_port

# A verifier that walks the paths that used to bypass the formatter. It is loaded
# through --import-path, as an operator's own verifier would be.
NOISY = """
import asyncio
import gc
import warnings

from gateway.verifiers import AuthFailed


async def boom():
    raise RuntimeError("nobody awaits me")


async def verify(message, conn):
    what = message.get("do")
    if what == "warn":  # -> py.warnings
        warnings.warn("a library is unhappy", UserWarning, stacklevel=1)
    elif what == "orphan":  # -> the loop's exception handler -> the "asyncio" logger
        task = asyncio.ensure_future(boom())
        for _ in range(3):
            await asyncio.sleep(0)
        del task
        gc.collect()
    elif what == "crash":  # -> a traceback on uvgate.auth
        raise ValueError("verifier bug\\nwith a second line")
    raise AuthFailed(4401, "no")
"""

LOGFMT_LINE = re.compile(
    r'time=\S+ level=[a-z]+ logger=\S+ msg=("([^"\\]|\\.)*"|\S+)( \S+=\S+| \S+="([^"\\]|\\.)*")*'
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def send_each(port: int, messages: list[dict[str, str]]) -> None:
    for message in messages:
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps(message))
            await ws.wait_closed()  # the gateway refuses every one of them


def run_noisy(tmp_path: Path, fmt: str) -> list[str]:
    (tmp_path / "noisy.py").write_text(NOISY)
    port = free_port()
    cmd = [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--log-format", fmt]
    served = Program([*cmd, "--import-path", ".", "--verifier", "noisy:verify"], cwd=tmp_path)
    try:
        run_checked(send_each(port, [{"do": "warn"}, {"do": "orphan"}, {"do": "crash"}]))
    finally:
        code, err = served.stop()
    assert code == 0, err
    return err.splitlines()


def run_http_backend_down(tmp_path: Path, fmt: str) -> list[str]:
    port = free_port()
    options = json.dumps({"url": f"http://127.0.0.1:{closed_port()}/auth"})
    cmd = [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--log-format", fmt]
    served = Program([*cmd, "--verifier", "http", "--verifier-options", options], cwd=tmp_path)
    try:
        run_checked(send_each(port, [{"type": "auth", "token": "t"}]))
    finally:
        code, err = served.stop()
    assert code == 0, err
    return err.splitlines()


def loggers_seen(records: list[dict[str, object]]) -> set[object]:
    return {r["logger"] for r in records}


def test_every_stderr_line_is_json(tmp_path: Path):
    lines = run_noisy(tmp_path, "json") + run_http_backend_down(tmp_path, "json")
    records = []
    for line in lines:
        record = orjson.loads(line)  # raises on any line that is not JSON
        assert {"time", "level", "logger", "msg"} <= record.keys(), line
        records.append(record)
    seen = loggers_seen(records)
    assert {"py.warnings", "asyncio", "uvgate.auth", "uvgate.verifiers.http"} <= seen, seen
    warning = next(r for r in records if r["logger"] == "py.warnings")
    assert "a library is unhappy" in str(warning["msg"])
    orphan = next(r for r in records if r["logger"] == "asyncio")
    assert "never retrieved" in str(orphan["msg"]) and "nobody awaits me" in str(orphan["exc"])
    crash = next(r for r in records if "failed" in str(r["msg"]) and "exc" in r)
    assert "ValueError: verifier bug" in str(crash["exc"])
    backend = next(r for r in records if r["logger"] == "uvgate.verifiers.http")
    assert backend["level"] == "warning" and "unavailable" in str(backend["msg"])


def test_every_stderr_line_is_logfmt(tmp_path: Path):
    lines = run_noisy(tmp_path, "text") + run_http_backend_down(tmp_path, "text")
    for line in lines:
        assert LOGFMT_LINE.fullmatch(line), line
    text = "\n".join(lines)
    for logger in ("py.warnings", "asyncio", "uvgate.auth", "uvgate.verifiers.http"):
        assert f"logger={logger} " in text, logger
    # The traceback is one escaped field, not lines of its own.
    assert re.search(r'exc="Traceback .*ValueError: verifier bug\\nwith a second line', text)


@pytest.mark.parametrize("formatter", [JsonFormatter(), LogfmtFormatter()])
def test_a_traceback_stays_on_one_line(formatter: logging.Formatter):
    try:
        raise KeyError("x")
    except KeyError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "m\nn", (), sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line and "KeyError" in line


def test_uncaught_exception_is_a_log_line(tmp_path: Path):
    script = (
        "from gateway.logs import setup_logging\n"
        "import threading, warnings\n"
        "setup_logging('info', 'json')\n"
        "warnings.warn('careful')\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='worker-x')\n"
        "t.start(); t.join()\n"
        "raise SystemError('the end')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    records = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert [r["logger"] for r in records] == ["py.warnings", "uvgate.process", "uvgate.process"]
    assert "ZeroDivisionError" in records[1]["exc"] and "worker-x" in records[1]["msg"]
    assert records[2]["level"] == "critical" and "SystemError: the end" in records[2]["exc"]
