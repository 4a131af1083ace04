"""Pusher protocol v7 client-side helpers: URL, channel auth, signed HTTP API requests.

See the Pusher protocol notes (signatures section): private channel auth is
HMAC-SHA256 hex of ``"{socket_id}:{channel}"``; HTTP API requests are signed over
``"{METHOD}\\n{path}\\n{sorted query}"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any


def ws_path(app_key: str) -> str:
    return f"/app/{app_key}?protocol=7&client=js&version=8.4.0&flash=false"


def channel_auth(app_key: str, app_secret: str, socket_id: str, channel: str) -> str:
    sig = hmac.new(
        app_secret.encode(), f"{socket_id}:{channel}".encode(), hashlib.sha256
    ).hexdigest()
    return f"{app_key}:{sig}"


def subscribe_message(app_key: str, app_secret: str, socket_id: str, channel: str) -> bytes:
    auth = channel_auth(app_key, app_secret, socket_id, channel)
    return json.dumps(
        {"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}},
        separators=(",", ":"),
    ).encode()


def parse_event(payload: bytes) -> tuple[str, Any]:
    """(event, data) of a server message; ``data`` decoded when it is a JSON string."""
    msg = json.loads(payload)
    data = msg.get("data")
    if isinstance(data, str) and data[:1] in ("{", "["):
        try:
            data = json.loads(data)
        except ValueError:
            pass
    return str(msg.get("event", "")), data


def sign_query(
    method: str,
    path: str,
    params: dict[str, str],
    app_secret: str,
) -> str:
    """The auth_signature over the sorted query (keys lower-cased, values unescaped)."""
    query = "&".join(f"{k.lower()}={params[k]}" for k in sorted(params, key=str.lower))
    to_sign = f"{method}\n{path}\n{query}"
    return hmac.new(app_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def signed_request(
    method: str,
    path: str,
    body: bytes,
    app_key: str,
    app_secret: str,
    now: int | None = None,
) -> str:
    """``path?query`` with auth_key, auth_timestamp, auth_version, body_md5, auth_signature."""
    params = {
        "auth_key": app_key,
        "auth_timestamp": str(int(time.time()) if now is None else now),
        "auth_version": "1.0",
    }
    if body:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    params["auth_signature"] = sign_query(method, path, params, app_secret)
    return path + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def trigger_body(channel: str, event: str, data: str) -> bytes:
    return json.dumps(
        {"name": event, "channel": channel, "data": data}, separators=(",", ":")
    ).encode()


def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a complete chunked body starting at ``pos``, else None."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", eol)
            if buf[eol : eol + 4] == b"\r\n\r\n":
                return b"".join(parts), eol + 4
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 4
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(buf[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2


class HTTPClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (the publisher's path)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.transport: Any = None
        self._buf = b""
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buf[:end].decode("latin-1")
        lines = head.split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            status = 0
        length = 0
        chunked = False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v.strip())
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
        if chunked:
            parsed = _dechunk(self._buf, end + 4)
            if parsed is None:
                return
            body, consumed = parsed
            self._buf = self._buf[consumed:]
        else:
            if len(self._buf) < end + 4 + length:
                return
            body = self._buf[end + 4 : end + 4 + length]
            self._buf = self._buf[end + 4 + length :]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("HTTP connection lost"))

    async def request(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self.transport.write(
            (
                f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: keep-alive\r\n\r\n"
            ).encode()
            + body
        )
        return await self._waiter
