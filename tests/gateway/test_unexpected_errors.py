"""No exception leaves a protocol callback: the peer gets an answer, the log one short line.

A bug a client can reach (an exception escaping a parser or a handler) is answered (400
before the upgrade, close 1011/1007 after) and logged once per occurrence within a rate
budget, with the traceback only the first time a given place raises: no "Fatal error on
transport" from the event loop, no traceback storm.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from gateway import errorlog
from gateway.connection import http1
from tests.gwtest import auth_message, raw_request, running_gateway, status_of, upgrade_request, url


@pytest.fixture(autouse=True)
def fresh_budget() -> None:
    errorlog.reset()


def _error_lines(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "uvgate.errors"]


def test_an_escape_before_the_upgrade_answers_400(arun: Any, caplog: Any, monkeypatch: Any) -> None:
    def broken(data: Any, **kwargs: Any) -> Any:
        raise ValueError("a parser bug")

    monkeypatch.setattr(http1, "parse_request", broken)
    n = errorlog.BURST + 5

    async def main() -> None:
        async with running_gateway() as gw:
            for _ in range(n):
                response = await raw_request(gw, upgrade_request())
                assert status_of(response) == 400
            # The gateway still serves (the bug is only in this request path).
            monkeypatch.undo()
            assert status_of(await raw_request(gw, b"GET /up HTTP/1.1\r\n\r\n")) == 200

    with caplog.at_level(logging.ERROR):
        arun(main())
    lines = _error_lines(caplog)
    assert len(lines) == errorlog.BURST  # the rest suppressed within the window
    assert sum(1 for r in lines if r.exc_info) == 1  # one traceback for the one site
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["ip"] == "127.0.0.1" and "ValueError: a parser bug" in fields["error"]


def test_an_escape_after_the_upgrade_closes_1011(arun: Any, caplog: Any) -> None:
    def on_message(conn: Any, data: Any) -> None:
        raise KeyError("app bug")

    async def main() -> None:
        async with running_gateway(on_message=on_message) as gw, connect(url(gw)) as ws:
            await ws.send(auth_message())
            assert json.loads(await ws.recv())["type"] == "auth_ok"
            await ws.send("boom")
            await asyncio.wait_for(ws.wait_closed(), 2)
            assert ws.close_code == 1011 and ws.close_reason == "internal error"

    with caplog.at_level(logging.ERROR):
        arun(main())
    (line,) = _error_lines(caplog)
    assert line.fields["where"] == "message handler"  # type: ignore[attr-defined]


def test_the_budget_window_reopens(caplog: Any) -> None:
    clock = [0.0]

    class Conn:
        ip, id, state = "10.0.0.1", "1.1", None

    with caplog.at_level(logging.WARNING, logger="uvgate.errors"):
        for _ in range(errorlog.BURST + 3):
            errorlog.unexpected(RuntimeError("x"), Conn(), "test", clock=lambda: clock[0])
        clock[0] = errorlog.WINDOW + 1
        errorlog.unexpected(RuntimeError("x"), Conn(), "test", clock=lambda: clock[0])
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("unexpected error") == errorlog.BURST + 1
    (summary,) = [r for r in caplog.records if r.getMessage() == "unexpected errors suppressed"]
    assert summary.fields["count"] == 3  # type: ignore[attr-defined]
