"""Handshake refusals, limits, flow control and idle handling against a live gateway."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from protocol.frames import OP_BINARY, OP_TEXT, FrameParser, encode_client_frame
from tests.gwtest import (
    auth_message,
    raw_request,
    running_gateway,
    status_of,
    upgrade_request,
    url,
)


async def authed(gw, user="alice", **kw):
    ws = await connect(url(gw), **kw)
    await ws.send(auth_message(user))
    ack = json.loads(await ws.recv())
    assert ack["type"] == "auth_ok"
    return ws, ack["id"]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"garbage\r\n\r\n", 400),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
            400,
        ),
        (upgrade_request().replace(b"Version: 13", b"Version: 8"), 426),
        (upgrade_request("/nope"), 404),
        (upgrade_request().replace(b"GET", b"POST"), 400),
        (b"GET /ws HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_handshakes_get_a_status_and_others_keep_working(arun, request_bytes, status):
    async def main():
        async with running_gateway() as gw:
            ws, _ = await authed(gw)
            response = await raw_request(gw, request_bytes)
            assert status_of(response) == status, response[:200]
            # The established client is unaffected.
            await ws.send("still here")
            assert await ws.recv() == "still here"
            await ws.close()

    arun(main())


def test_426_names_the_supported_version(arun):
    async def main():
        async with running_gateway() as gw:
            response = await raw_request(
                gw, upgrade_request().replace(b"Version: 13", b"Version: 8")
            )
            assert b"sec-websocket-version: 13" in response.lower()

    arun(main())


def test_origin_allow_list(arun):
    async def main():
        async with running_gateway(allowed_origins=["https://app.example"]) as gw:
            bad = await raw_request(gw, upgrade_request(extra="Origin: https://evil.example\r\n"))
            assert status_of(bad) == 403
            ok = await raw_request(
                gw, upgrade_request(extra="Origin: https://app.example\r\n"), read_timeout=0.3
            )
            assert status_of(ok) == 101

    arun(main())


def test_max_connections_gets_503(arun):
    async def main():
        async with running_gateway(max_connections=2) as gw:
            a, _ = await authed(gw, "a")
            b, _ = await authed(gw, "b")
            with pytest.raises(InvalidStatus) as info:
                await connect(url(gw))
            assert info.value.response.status_code == 503
            assert gw.stats.over_capacity == 1
            await a.close()
            await b.close()

    arun(main())


def test_oversized_message_closes_1009(arun):
    async def main():
        async with running_gateway(max_message_size=1024) as gw:
            ws, _ = await authed(gw)
            await ws.send("x" * 1024)
            assert len(await ws.recv()) == 1024
            await ws.send("x" * 1025)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1009

    arun(main())


def test_oversized_first_message_closes_1009_too(arun):
    async def main():
        async with running_gateway(max_message_size=256) as gw, connect(url(gw)) as ws:
            await ws.send("x" * 10_000)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1009

    arun(main())


def test_protocol_violation_closes_1002(arun):
    async def main():
        async with running_gateway() as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            # An unmasked client frame: RFC 6455 5.1 requires the server to fail.
            writer.write(b"\x81\x02hi")
            data = await asyncio.wait_for(reader.read(), 2)
            events = FrameParser(require_mask=False).feed(data)
            assert events[-1].code == 1002
            writer.close()
            assert gw.stats.protocol_errors == 1

    arun(main())


def test_slowloris_request_is_dropped(arun):
    async def main():
        async with running_gateway(handshake_timeout=0.3) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finished
            data = await asyncio.wait_for(reader.read(), 2)
            assert data == b""  # dropped without a response
            assert gw.stats.handshake_timeouts == 1
            assert not gw.timers.pending
            writer.close()

    arun(main())


def test_slow_consumer_is_closed_and_others_unharmed(arun):
    async def main():
        async with running_gateway(max_send_buffer=256 * 1024, app="chat") as gw:
            # A raw client that authenticates, joins, and then never reads.
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port, limit=1024)
            sock = writer.get_extra_info("socket")
            import socket

            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            writer.write(encode_client_frame(OP_TEXT, auth_message("sloth").encode()))
            writer.write(encode_client_frame(OP_TEXT, b'{"type":"join","group":"g"}'))
            await asyncio.sleep(0.1)
            good, _ = await authed(gw, "good")
            await good.send('{"type":"join","group":"g"}')
            assert json.loads(await good.recv())["type"] == "joined"
            # Loopback kernel buffers swallow several MB before the gateway's own
            # buffer grows: up to 64 MB to a reader that reads nothing.
            payload = "y" * 32000
            for i in range(2000):
                gw.registry.broadcast("g", {"n": i, "p": payload})
                await asyncio.sleep(0)
                if gw.stats.slow_consumers:
                    break
            assert gw.stats.slow_consumers == 1
            assert gw.registry.count(group="g") == 1
            # The good client got every message, in order.
            last = -1
            while last < i:
                msg = json.loads(await good.recv())
                assert msg["n"] == last + 1
                last = msg["n"]
            await good.close()
            writer.close()

    arun(main(), timeout=30)


def test_echo_backpressure_pauses_reading_instead_of_buffering(arun):
    async def main():
        async with running_gateway(max_send_buffer=128 * 1024) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port, limit=1024)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            writer.write(encode_client_frame(OP_TEXT, auth_message().encode()))
            frame = encode_client_frame(OP_BINARY, b"z" * 16000)
            for _ in range(300):  # 4.8 MB of echo requests, reading none of the replies
                writer.write(frame)
                try:
                    await asyncio.wait_for(writer.drain(), 0.05)
                except TimeoutError:
                    break
            conn = next(iter(gw.registry))
            # The gateway stopped reading from us rather than queueing our echoes.
            assert conn.write_paused
            assert conn.transport.get_write_buffer_size() <= 256 * 1024
            assert gw.stats.slow_consumers == 0
            writer.close()

    arun(main(), timeout=30)


def test_idle_connection_is_pinged_then_closed(arun):
    async def main():
        async with running_gateway(ping_interval=0.2, idle_timeout=0.8) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            writer.write(encode_client_frame(OP_TEXT, auth_message().encode()))
            data = b""
            async with asyncio.timeout(3):
                while chunk := await reader.read(4096):
                    data += chunk
            events = FrameParser(require_mask=False).feed(data)
            kinds = [type(e).__name__ for e in events]
            assert "Ping" in kinds
            assert kinds[-1] == "CloseFrame" and events[-1].code == 1001
            writer.close()

    arun(main(), timeout=10)


def test_websockets_client_answers_pings_and_stays(arun):
    async def main():
        async with running_gateway(ping_interval=0.1, idle_timeout=0.5) as gw:
            ws, _ = await authed(gw, ping_interval=None)
            await asyncio.sleep(1.2)  # several idle windows, pongs keep it alive
            await ws.send("alive")
            assert await ws.recv() == "alive"
            await ws.close()

    arun(main(), timeout=10)


def test_health_ready_metrics_and_unknown_http(arun):
    async def main():
        async with running_gateway() as gw:
            up = await raw_request(gw, b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status_of(up) == 200 and b'"up"' in up
            ready = await raw_request(
                gw, b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert status_of(ready) == 200
            metrics = await raw_request(
                gw, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert b"uvgate_tcp_accepted_total" in metrics
            missing = await raw_request(gw, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(missing) == 404

    arun(main())


def test_http_keep_alive_serves_pipelined_requests(arun):
    async def main():
        async with running_gateway() as gw:
            two = b"GET /up HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            response = await raw_request(gw, two)
            assert response.count(b"HTTP/1.1 200") == 2

    arun(main())


def test_every_close_path_leaves_no_trace(arun):
    async def main():
        async with running_gateway(auth_timeout=0.2, max_message_size=200) as gw:
            ws1, _ = await authed(gw, "u1")
            await ws1.close()  # clean close
            ws2, _ = await authed(gw, "u2")
            await ws2.send("x" * 500)  # 1009
            with pytest.raises(ConnectionClosed):
                await ws2.recv()
            ws3 = await connect(url(gw))  # auth timeout: the error frame, then the close
            assert json.loads(await ws3.recv())["code"] == 4408
            with pytest.raises(ConnectionClosed):
                await ws3.recv()
            _, id4 = await authed(gw, "u4")
            gw.registry.close(id4, 4000, "bye")  # server close
            r, w = await asyncio.open_connection("127.0.0.1", gw.port)
            w.write(upgrade_request())
            await r.readuntil(b"\r\n\r\n")
            w.transport.abort()  # abrupt TCP reset
            await asyncio.sleep(0.5)
            assert len(gw.registry) == 0
            assert not gw.timers.pending and not gw.timers.closing
            assert not gw.registry.users() and not gw.registry.groups()
            assert len(gw.timers.wheel) == 0

    arun(main(), timeout=20)
