"""Behind a proxy: X-Forwarded-For from trusted peers, the PROXY protocol, with raw sockets.

The "proxy" is this test on 127.0.0.1 (trusted); a direct client is a socket bound to
127.0.0.2 (not trusted). The client address the gateway settles on is read where users
meet it: the verifier's ConnectionInfo, the refusal log line, the per-IP 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from gateway.verifiers.base import AuthFailed, BaseVerifier, ConnectionInfo, Identity
from protocol.proxyproto import encode_v1, encode_v2
from tests.gwtest import running_gateway, status_of, upgrade_request


class SeesTheClient(BaseVerifier):
    """Accepts ``{"token": "good"}``; remembers the address every verification saw."""

    name = "sees-the-client"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.ports: list[int] = []

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        self.seen.append(conn.remote_ip)
        self.ports.append(conn.remote_port)
        if message.get("token") != "good":
            raise AuthFailed(4401, "bad token")
        return Identity(user="u")


def from_address(source: str, port: int, prefix: bytes = b"") -> socket.socket:
    """A connected socket whose source address is ``source`` (127.0.0.x), ``prefix`` sent."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if prefix:
        sock.sendall(prefix)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def ws_from(
    port: int, source: str = "127.0.0.1", *, prefix: bytes = b"", xff: str | None = None
):
    headers = {"X-Forwarded-For": xff} if xff is not None else None
    sock = from_address(source, port, prefix)
    async with connect(f"ws://127.0.0.1:{port}/ws", sock=sock, additional_headers=headers) as ws:
        yield ws


async def auth(ws: ClientConnection, token: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "auth", "token": token}))
    return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def raw_from(port: int, source: str, data: bytes, timeout: float = 2.0) -> bytes:
    """Send ``data`` from ``source``; everything answered until the server closes."""
    loop = asyncio.get_running_loop()
    sock = from_address(source, port)
    chunks = []
    try:
        await loop.sock_sendall(sock, data)
        async with asyncio.timeout(timeout):
            while chunk := await loop.sock_recv(sock, 65536):
                chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        sock.close()
    return b"".join(chunks)


def refusal_ips(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.fields["ip"] for r in caplog.records if r.getMessage() == "auth refused"]  # type: ignore[attr-defined]


# -- X-Forwarded-For ----------------------------------------------------------------------------
def test_forwarded_for_from_a_trusted_proxy_names_the_client(arun, caplog):
    caplog.set_level(logging.WARNING, "uvgate.auth")
    verifier = SeesTheClient()

    async def main():
        async with running_gateway(verifier=verifier, trusted_proxies=["127.0.0.1/32"]) as gw:
            async with ws_from(gw.port, xff="198.51.100.1, 203.0.113.7") as ws:
                assert (await auth(ws, "good"))["type"] == "auth_ok"
                conn = next(iter(gw.registry))
                assert conn.ip == "203.0.113.7" and conn.peer_ip == "127.0.0.1"
            async with ws_from(gw.port, xff="203.0.113.8") as ws:
                assert (await auth(ws, "bad"))["code"] == 4401
            # Garbage in the header: the peer, not a guess.
            async with ws_from(gw.port, xff="unknown") as ws:
                assert (await auth(ws, "good"))["type"] == "auth_ok"
            # No header from the proxy: the proxy itself.
            async with ws_from(gw.port) as ws:
                assert (await auth(ws, "good"))["type"] == "auth_ok"
        assert verifier.seen == ["203.0.113.7", "203.0.113.8", "127.0.0.1", "127.0.0.1"]

    arun(main())
    assert refusal_ips(caplog) == ["203.0.113.8"]


def test_forwarded_for_from_anyone_else_is_ignored(arun, caplog):
    caplog.set_level(logging.WARNING, "uvgate.auth")
    verifier = SeesTheClient()

    async def main():
        async with (
            running_gateway(verifier=verifier, trusted_proxies=["127.0.0.1"]) as gw,
            ws_from(gw.port, "127.0.0.2", xff="203.0.113.7") as ws,
        ):
            assert (await auth(ws, "bad"))["code"] == 4401
        # Without trusted_proxies the header means nothing either.
        async with (
            running_gateway(verifier=verifier) as gw,
            ws_from(gw.port, xff="203.0.113.9") as ws,
        ):
            assert (await auth(ws, "good"))["type"] == "auth_ok"
            assert type(next(iter(gw.registry))).__name__ == "Connection"
        assert verifier.seen == ["127.0.0.2", "127.0.0.1"]

    arun(main())
    assert refusal_ips(caplog) == ["127.0.0.2"]


def test_the_failure_limit_is_per_client_behind_the_proxy(arun):
    async def main():
        async with running_gateway(
            verifier=SeesTheClient(), trusted_proxies=["127.0.0.1"], auth_fail_limit=2
        ) as gw:
            for _ in range(2):
                async with ws_from(gw.port, xff="203.0.113.66") as ws:
                    await auth(ws, "bad")
            with pytest.raises(InvalidStatus) as info:
                async with ws_from(gw.port, xff="203.0.113.66"):
                    pass
            assert info.value.response.status_code == 429
            # Another client through the same proxy is not punished.
            async with ws_from(gw.port, xff="203.0.113.67") as ws:
                assert (await auth(ws, "good"))["type"] == "auth_ok"

    arun(main())


def test_each_http_request_on_a_keep_alive_connection_is_judged_alone(arun):
    seen: list[str] = []

    async def main():
        async with running_gateway(trusted_proxies=["127.0.0.1"]) as gw:

            def who(request, body, conn):
                from gateway.http import HttpResponse

                seen.append(conn.ip)
                return HttpResponse.text(200, "ok")

            gw.router.route_http("/who", who)
            first = b"GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n"
            second = (
                b"GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.2\r\n"
                b"Connection: close\r\n\r\n"
            )
            answer = await raw_from(gw.port, "127.0.0.1", first + second)
            assert answer.count(b"HTTP/1.1 200") == 2

    arun(main())
    assert seen == ["203.0.113.1", "203.0.113.2"]


# -- the PROXY protocol -----------------------------------------------------------------------
V1 = encode_v1(("203.0.113.21", 40000), ("127.0.0.1", 6001))
V2 = encode_v2(("2001:db8::21", 40001), ("::1", 6001), tlvs=b"\xea\x00\x04\x01vpc")
LOCAL = encode_v2(("203.0.113.22", 1), ("127.0.0.1", 2), local=True)


@pytest.mark.parametrize(
    ("header", "client", "client_port"),
    [(V1, "203.0.113.21", 40000), (V2, "2001:db8::21", 40001), (LOCAL, "127.0.0.1", None)],
    ids=["v1", "v2", "v2-local"],
)
def test_proxy_protocol_names_the_client(arun, header: bytes, client: str, client_port: int | None):
    verifier = SeesTheClient()

    async def main():
        async with running_gateway(
            verifier=verifier, trusted_proxies=["127.0.0.1"], proxy_protocol=True
        ) as gw:
            async with ws_from(gw.port, prefix=header, xff="198.51.100.9") as ws:
                assert (await auth(ws, "good"))["type"] == "auth_ok"
                conn = next(iter(gw.registry))
                assert conn.ip == client
                # Past the header, every read goes straight to the plain connection's path.
                assert conn.header_read
                await ws.send("echo")
                assert await ws.recv() == "echo"
            assert gw.stats.proxy_refused == 0
        # X-Forwarded-For is the client's own writing here: not read.
        assert verifier.seen == [client]
        # The client's port too (a LOCAL header names nobody: the proxy's own).
        [port] = verifier.ports
        assert port == client_port if client_port is not None else port > 0

    arun(main())


def test_proxy_header_in_pieces_and_with_the_request_in_one_segment(arun):
    async def main():
        async with running_gateway(trusted_proxies=["127.0.0.1"], proxy_protocol=True) as gw:
            loop = asyncio.get_running_loop()
            sock = from_address("127.0.0.1", gw.port)
            try:
                for piece in (V1[:5], V1[5:20], V1[20:]):
                    await loop.sock_sendall(sock, piece)
                    await asyncio.sleep(0.02)
                await loop.sock_sendall(sock, upgrade_request())
                answer = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
                assert status_of(answer) == 101
            finally:
                sock.close()
            answer = await raw_from(gw.port, "127.0.0.1", V2 + upgrade_request(), timeout=0.5)
            assert status_of(answer) == 101

    arun(main())


def test_proxy_protocol_refusals_close_without_an_answer(arun, caplog):
    caplog.set_level(logging.WARNING, "uvgate.proxy")

    async def main():
        async with running_gateway(trusted_proxies=["127.0.0.1"], proxy_protocol=True) as gw:
            # No header at all: a client that bypassed the balancer.
            assert await raw_from(gw.port, "127.0.0.1", upgrade_request()) == b""
            # A bad header.
            assert await raw_from(gw.port, "127.0.0.1", b"PROXY TCP4 1.2.3.4\r\n") == b""
            # A good header from a peer that is not a trusted proxy.
            assert await raw_from(gw.port, "127.0.0.2", V1 + upgrade_request()) == b""
            assert gw.stats.proxy_refused == 3
            assert not gw.timers.pending and not gw.registry
            assert gw.stats.tcp_accepted == gw.stats.tcp_closed == 3

    arun(main())
    reasons = [r.fields["reason"] for r in caplog.records if r.name == "uvgate.proxy"]  # type: ignore[attr-defined]
    assert reasons == [
        "no PROXY protocol header",
        "PROXY v1 line must have 6 fields",
        "peer is not a trusted proxy",
    ]


def test_proxy_options_are_checked():
    from gateway.config import Config, ConfigError

    with pytest.raises(
        ConfigError, match=r"'trusted_proxies': '10\.0\.0\.300' is not an IP network"
    ):
        Config(trusted_proxies=["10.0.0.300"]).validate()
    with pytest.raises(ConfigError, match="'proxy_protocol' needs 'trusted_proxies'"):
        Config(proxy_protocol=True).validate()
