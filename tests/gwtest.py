"""Helpers for integration tests: a gateway on an ephemeral port, raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import Config
from gateway.server import Gateway
from gateway.tokens import issue_token

SECRET = "test-secret"


def token(user: str = "alice", ttl: float = 60, **kw: Any) -> str:
    return issue_token(SECRET, user, ttl, **kw)


def auth_message(user: str = "alice", **kw: Any) -> str:
    return json.dumps({"type": "auth", "token": token(user, **kw)})


@contextlib.asynccontextmanager
async def running_gateway(**kw: Any) -> AsyncIterator[Gateway]:
    """A gateway on 127.0.0.1:<ephemeral>, hmac verifier with SECRET, echo app by default."""
    objects = ("verifier", "app", "on_connect", "on_message", "on_close")
    # A string ``app`` names a built-in (config); an object is passed as is.
    gw_kwargs = {k: kw.pop(k) for k in list(kw) if k in objects and not isinstance(kw[k], str)}
    options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "secret": SECRET, "node_id": 7}
    options.update(kw)
    gateway = Gateway(Config(**options), **gw_kwargs)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.shutdown(grace=1.0)


def url(gw: Gateway, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{gw.port}{path}"


UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


def upgrade_request(path: str = "/ws", extra: str = "") -> bytes:
    return UPGRADE.format(path=path, extra=extra).encode()


async def raw_request(gw: Gateway, data: bytes, *, read_timeout: float = 2.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes (or timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(read_timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except TimeoutError:
        pass
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
