"""Signed raw HTTP requests for the Pusher HTTP API tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from urllib.parse import quote

import orjson

from protocol.pusher.apps import App
from protocol.pusher.signatures import body_md5, sign_api_request


def signed_target(
    app: App,
    method: str,
    path: str,
    body: bytes = b"",
    params: Sequence[tuple[str, str]] = (),
    *,
    timestamp: float | None = None,
    md5: str | None = None,
    secret: str | None = None,
    key: str | None = None,
) -> str:
    """``path?query`` signed like the official libraries (``md5=""``: no body_md5)."""
    pairs = [
        *params,
        ("auth_key", key or app.key),
        ("auth_timestamp", str(int(time.time() if timestamp is None else timestamp))),
        ("auth_version", "1.0"),
    ]
    if md5 != "":
        pairs.append(("body_md5", md5 or body_md5(body)))
    pairs.append(("auth_signature", sign_api_request(secret or app.secret, method, path, pairs)))
    query = "&".join(f"{k}={quote(v, safe=',')}" for k, v in pairs)
    return f"{path}?{query}"


def raw(method: str, target: str, body: bytes = b"", *, keep_alive: bool = False) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> object:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(status, headers, body)


async def request(port: int, method: str, target: str, body: bytes = b"") -> Response:
    """One request on a fresh connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw(method, target, body))
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def call(
    port: int,
    app: App,
    method: str,
    path: str,
    body: object = None,
    params: Sequence[tuple[str, str]] = (),
    **sign: object,
) -> Response:
    """A correctly signed request (``sign`` overrides: timestamp, md5, secret, key)."""
    data = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    target = signed_target(app, method, path, data, params, **sign)  # type: ignore[arg-type]
    return await request(port, method, target, data)
