"""The yardstick: a raw uvloop asyncio.Protocol WebSocket server, as lean as Python gets.

Hand-parses the upgrade request and client frames (RFC 6455 5.2, unmasking with one
big-int XOR), does uvgate's job (first-message HMAC token auth, then echo or chat)
and nothing else: no extensions, no fragmentation support, no flow control, no limits.
It is the practical upper bound, not a server to deploy.

``--app pusher`` is the same yardstick for the Pusher protocol v7 subset the generator
uses: /app/{key} with connection_established, private-channel subscribe with the HMAC
auth check, pong, and the signed ``POST /apps/{id}/events`` HTTP API (broadcast encoded
once per event).

    python bench/peers/raw_probe.py --host 127.0.0.1 --port 8765 --secret S --app echo
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import struct
import sys
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson
import uvloop
from peer_common import authenticate, parse_args, ready

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY_HDR = b"\r\nsec-websocket-key:"

GROUPS: dict[str, set[Probe]] = {}


def server_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


class Probe(asyncio.Protocol):
    __slots__ = ("buf", "chat", "groups", "key", "open", "transport", "user")

    def __init__(self, key: bytes, chat: bool) -> None:
        self.key = key
        self.chat = chat
        self.buf = b""
        self.open = False
        self.user: str | None = None
        self.groups: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for g in self.groups:
            members = GROUPS.get(g)
            if members is not None:
                members.discard(self)
                if not members:
                    del GROUPS[g]

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end].lower()
            i = head.find(_KEY_HDR)
            if i < 0 or not head.startswith(b"get "):
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]
                return
            j = head.find(b"\r\n", i + 2)
            # The key is base64: take it from the original (not lower-cased) bytes.
            key = data[i + len(_KEY_HDR) : j if j >= 0 else end].strip()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.open = True
            data = data[end + 4 :]
        pos = 0
        n = len(data)
        while n - pos >= 6:
            b0 = data[pos]
            ln = data[pos + 1] & 0x7F
            if ln < 126:
                hdr = 6
            elif ln == 126:
                if n - pos < 8:
                    break
                ln = (data[pos + 2] << 8) | data[pos + 3]
                hdr = 8
            else:
                if n - pos < 14:
                    break
                ln = int.from_bytes(data[pos + 2 : pos + 10], "big")
                hdr = 14
            end = pos + hdr + ln
            if end > n:
                break
            mask = data[pos + hdr - 4 : pos + hdr]
            # Unmask (RFC 6455 5.3) with one big-int XOR instead of a loop per byte.
            payload = (
                (
                    int.from_bytes(data[pos + hdr : end], "little")
                    ^ int.from_bytes((mask * (ln // 4 + 1))[:ln], "little")
                ).to_bytes(ln, "little")
                if ln
                else b""
            )
            pos = end
            self.frame(b0 & 0x0F, payload)
        if pos < n:
            self.buf = data[pos:]

    def frame(self, op: int, payload: bytes) -> None:
        t = self.transport
        assert t is not None
        if op == 8:  # close: echo the code, then close TCP (RFC 6455 7.1.1 server side)
            t.write(server_frame(8, payload[:2]))
            t.close()
            return
        if op == 9:
            t.write(server_frame(10, payload))
            return
        if op not in (1, 2):
            return
        if self.user is None:
            reply, user = authenticate(self.key, payload)
            t.write(server_frame(1, reply))
            if user is None:
                t.write(server_frame(8, b"\x11\x31"))  # 4401
                t.close()
            self.user = user
            return
        if not self.chat:
            t.write(server_frame(op, payload))
            return
        try:
            msg = orjson.loads(payload)
            kind = msg["type"]
            group = msg["group"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "join":
            GROUPS.setdefault(group, set()).add(self)
            self.groups.append(group)
            t.write(server_frame(1, orjson.dumps({"type": "joined", "group": group})))
        elif kind == "publish":
            members = GROUPS.get(group)
            if members:
                out = server_frame(
                    1,
                    orjson.dumps(
                        {
                            "type": "message",
                            "group": group,
                            "from": self.user,
                            "data": msg.get("data"),
                        }
                    ),
                )  # encode once, write many
                for m in members:
                    m.transport.write(out)  # type: ignore[union-attr]


CHANNELS: dict[str, set[PusherProbe]] = {}


def _http(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class PusherProbe(Probe):
    """Pusher v7 subset on the same lean frame loop (see the module docstring)."""

    __slots__ = ("app", "channels", "socket_id")

    def __init__(self, app: tuple[str, str, bytes]) -> None:
        super().__init__(b"", False)
        self.app = app  # (app_id, app_key, app_secret)
        self.socket_id = ""
        self.channels: list[str] = []

    def connection_lost(self, exc: Exception | None) -> None:
        for c in self.channels:
            members = CHANNELS.get(c)
            if members is not None:
                members.discard(self)
                if not members:
                    del CHANNELS[c]

    def data_received(self, data: bytes) -> None:
        if self.open:
            super().data_received(data)
            return
        if self.buf:
            data = self.buf + data
            self.buf = b""
        while data and not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end]
            lower = head.lower()
            if b"\r\nupgrade: websocket" in lower:
                path = head[4 : head.find(b" ", 4)].decode()
                if not path.startswith(f"/app/{self.app[1]}"):
                    self.transport.write(_http("404 Not Found", b"{}"))  # type: ignore[union-attr]
                    self.transport.close()  # type: ignore[union-attr]
                    return
                super().data_received(data)  # the plain probe does the 101
                self.socket_id = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"
                established = orjson.dumps(
                    {"socket_id": self.socket_id, "activity_timeout": 120}
                ).decode()
                self.transport.write(  # type: ignore[union-attr]
                    server_frame(
                        1,
                        orjson.dumps(
                            {"event": "pusher:connection_established", "data": established}
                        ),
                    )
                )
                return
            i = lower.find(b"\r\ncontent-length:")
            length = int(lower[i + 17 : lower.find(b"\r\n", i + 2)].strip() or 0) if i >= 0 else 0
            if len(data) < end + 4 + length:
                self.buf = data
                return
            body = data[end + 4 : end + 4 + length]
            data = data[end + 4 + length :]
            self.transport.write(self.api(head, body))  # type: ignore[union-attr]

    def api(self, head: bytes, body: bytes) -> bytes:
        """POST /apps/{id}/events with the signature check of the Pusher HTTP API."""
        method, target = head.split(b" ", 2)[:2]
        u = urlsplit(target.decode())
        app_id, app_key, app_secret = self.app
        if method != b"POST" or u.path != f"/apps/{app_id}/events":
            return _http("404 Not Found", b"{}")
        params = dict(parse_qsl(u.query))
        sig = params.pop("auth_signature", "")
        query = "&".join(f"{k}={params[k]}" for k in sorted(params))
        expected = hmac.new(app_secret, f"POST\n{u.path}\n{query}".encode(), hashlib.sha256)
        if (
            params.get("auth_key") != app_key
            or params.get("body_md5") != hashlib.md5(body).hexdigest()
            or not hmac.compare_digest(expected.hexdigest(), sig)
        ):
            return _http("401 Unauthorized", b'{"error":"invalid signature"}')
        try:
            ev = orjson.loads(body)
            channels = ev.get("channels") or [ev["channel"]]
            name, payload = ev["name"], ev["data"]
        except (ValueError, KeyError, TypeError):
            return _http("400 Bad Request", b"{}")
        for c in channels:
            members = CHANNELS.get(c)
            if members:
                out = server_frame(
                    1, orjson.dumps({"event": name, "channel": c, "data": payload})
                )  # encode once, write many
                for m in members:
                    m.transport.write(out)  # type: ignore[union-attr]
        return _http("200 OK", b"{}")

    def frame(self, op: int, payload: bytes) -> None:
        t = self.transport
        assert t is not None
        if op != 1:
            super().frame(op, payload)
            return
        try:
            msg = orjson.loads(payload)
            event = msg["event"]
        except (ValueError, KeyError, TypeError):
            return
        if event == "pusher:ping":
            t.write(server_frame(1, b'{"event":"pusher:pong","data":"{}"}'))
        elif event == "pusher:subscribe":
            data = msg.get("data") or {}
            channel = str(data.get("channel", ""))
            app_key, secret = self.app[1], self.app[2]
            sig = hmac.new(secret, f"{self.socket_id}:{channel}".encode(), hashlib.sha256)
            if channel.startswith("private-") and not hmac.compare_digest(
                str(data.get("auth", "")), f"{app_key}:{sig.hexdigest()}"
            ):
                err = {"type": "AuthError", "error": "invalid signature", "status": 401}
                t.write(
                    server_frame(
                        1,
                        orjson.dumps(
                            {
                                "event": "pusher:subscription_error",
                                "channel": channel,
                                "data": orjson.dumps(err).decode(),
                            }
                        ),
                    )
                )
                return
            CHANNELS.setdefault(channel, set()).add(self)
            self.channels.append(channel)
            t.write(
                server_frame(
                    1,
                    orjson.dumps(
                        {
                            "event": "pusher_internal:subscription_succeeded",
                            "channel": channel,
                            "data": "{}",
                        }
                    ),
                )
            )


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0], ("echo", "chat", "pusher"))
    loop = asyncio.get_running_loop()
    key = args.secret.encode()
    chat = args.app == "chat"
    if args.app == "pusher":
        app = (args.app_id, args.app_key, args.app_secret.encode())
        server = await loop.create_server(
            lambda: PusherProbe(app), args.host, args.port, backlog=4096, reuse_address=True
        )
    else:
        server = await loop.create_server(
            lambda: Probe(key, chat), args.host, args.port, backlog=4096, reuse_address=True
        )
    ready("raw_probe", args.host, args.port, args.app)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass
