"""Pipelined keep-alive HTTP requests are served by a loop: every one answered, in order.

Regression for the recursion found by fuzzing (issue "Hardening", crash 3): 198
``GET /up`` in one send got 197 answers and a dropped connection with 108 KB of traceback
(``_on_request -> _process_buffer -> _serve_http -> _send_http -> _process_buffer``, five
frames per request). The same with the Pusher HTTP API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from protocol.pusher.apps import App
from tests.gwtest import running_gateway
from tests.pusher_api_helpers import raw, read_response, signed_target
from tests.pusher_ws_helpers import app_table

APP = App(id="42", key="key-42", secret="secret-42")


async def pipelined(port: int, data: bytes, count: int) -> list[Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return [await asyncio.wait_for(read_response(reader), 5) for _ in range(count)]
    finally:
        writer.close()
        await writer.wait_closed()


def test_thousands_of_pipelined_gets_are_all_answered(arun: Any, caplog: Any) -> None:
    n = 2000

    async def main() -> None:
        async with running_gateway() as gw:
            responses = await pipelined(gw.port, b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n" * n, n)
            assert [r.status for r in responses] == [200] * n
            assert all(r.json() == {"status": "up"} for r in responses)

    with caplog.at_level(logging.WARNING):
        arun(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_pipelined_api_posts_are_all_published_in_order(arun: Any) -> None:
    n = 300

    async def main() -> None:
        async with running_gateway(apps=[app_table(APP)]) as gw:
            assert gw.pusher is not None
            requests = []
            for i in range(n):
                body = orjson.dumps({"name": "ev", "data": str(i), "channels": ["cache-c"]})
                target = signed_target(APP, "POST", f"/apps/{APP.id}/events", body)
                requests.append(raw("POST", target, body, keep_alive=True))
            responses = await pipelined(gw.port, b"".join(requests), n)
            assert [r.status for r in responses] == [200] * n
            cached = gw.pusher.cached(APP, "cache-c")
            assert cached is not None and cached.data == str(n - 1)  # the last one, last

    arun(main())


def test_a_body_split_across_reads_then_pipelined_requests(arun: Any) -> None:
    async def main() -> None:
        async with running_gateway(apps=[app_table(APP)]) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            body = orjson.dumps({"name": "ev", "data": "x", "channels": ["c"]})
            target = signed_target(APP, "POST", f"/apps/{APP.id}/events", body)
            request = raw("POST", target, body, keep_alive=True)
            for i in range(0, len(request), 7):  # a few bytes at a time
                writer.write(request[i : i + 7])
                await writer.drain()
                await asyncio.sleep(0)
            assert (await asyncio.wait_for(read_response(reader), 2)).status == 200
            writer.write(b"GET /up HTTP/1.1\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\n")
            assert (await read_response(reader)).status == 200
            assert (await read_response(reader)).status == 404
            assert await reader.read() == b""  # a 404 closes
            writer.close()

    arun(main())


def _chunked(target: str, chunks: list[bytes]) -> bytes:
    head = (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return head + body


def test_chunked_request_bodies(arun: Any) -> None:
    """The HTTP API takes chunked bodies (it answered 501 before), bounded like any body."""

    async def main() -> None:
        async with running_gateway(apps=[app_table(APP)], max_http_body=4096) as gw:
            assert gw.pusher is not None
            body = orjson.dumps({"name": "ev", "data": "chunky", "channels": ["cache-z"]})
            target = signed_target(APP, "POST", f"/apps/{APP.id}/events", body)
            request = _chunked(target, [body[:10], body[10:25], body[25:]])
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            for i in range(0, len(request), 11):  # and in pieces
                writer.write(request[i : i + 11])
                await writer.drain()
                await asyncio.sleep(0)
            assert (await asyncio.wait_for(read_response(reader), 2)).status == 200
            cached = gw.pusher.cached(APP, "cache-z")
            assert cached is not None and cached.data == "chunky"
            writer.write(b"GET /up HTTP/1.1\r\n\r\n")  # keep-alive goes on after it
            assert (await read_response(reader)).status == 200
            writer.close()
            too_big = _chunked(target, [b"x" * 3000, b"y" * 3000])
            bad = _chunked(target, [b"{}"]).replace(b"2\r\n{}", b"+2\r\n{}")
            for raw_request, status in ((too_big, 413), (bad, 400)):
                responses = await pipelined(gw.port, raw_request, 1)
                assert responses[0].status == status

    arun(main())
