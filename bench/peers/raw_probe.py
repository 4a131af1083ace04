"""The yardstick: a raw uvloop asyncio.Protocol WebSocket server, as lean as Python gets.

Hand-parses the upgrade request and client frames (RFC 6455 5.2, unmasking with one
big-int XOR), does uvgate's job (first-message HMAC token auth, then echo or chat)
and nothing else: no extensions, no fragmentation support, no flow control, no limits.
It is the practical upper bound, not a server to deploy.

    python bench/peers/raw_probe.py --host 127.0.0.1 --port 8765 --secret S --app echo
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import sys

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


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    loop = asyncio.get_running_loop()
    key = args.secret.encode()
    chat = args.app == "chat"
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
