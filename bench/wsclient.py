"""Minimal hand-rolled client side of RFC 6455 for the load generator.

Only what a load generator needs: write the upgrade request by hand, accept any
``101`` response (the accept hash is not checked: a load tool, not a conformance
tool), mask outgoing frames with one fixed key per connection, parse unmasked
server frames, answer pings, and take part in the closing handshake.
No websockets library on the hot path, no task per message.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Masks for payloads up to this size come from a per-connection cache; small, because a
# hold keeps 100k connections in a few generator processes.
_MASK_CACHE_LEN = 128


def upgrade_request(host: str, port: int, path: str, key: bytes | None = None) -> bytes:
    """The HTTP/1.1 upgrade request (RFC 6455 4.1), ``key`` is the raw 16-byte nonce."""
    nonce = base64.b64encode(key if key is not None else os.urandom(16))
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        (
            f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: "
        ).encode()
        + nonce
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def parse_response_head(buf: bytes) -> tuple[int, int] | None:
    """``(status, head_length)`` once the response head is complete, else ``None``."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    line = buf[: buf.find(b"\r\n")]
    parts = line.split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        status = 0
    return status, end + 4


class Masker:
    """A fixed per-connection masking key (RFC 6455 5.3), applied with one big-int XOR."""

    __slots__ = ("_rep", "key")

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key if key is not None else os.urandom(4)
        self._rep = self.key * (_MASK_CACHE_LEN // 4)

    def mask(self, payload: bytes) -> bytes:
        n = len(payload)
        if n == 0:
            return b""
        rep = self._rep if n <= _MASK_CACHE_LEN else self.key * (n // 4 + 1)
        # int.from_bytes XOR: one C-level pass instead of a Python loop per byte.
        x = int.from_bytes(payload, "little") ^ int.from_bytes(rep[:n], "little")
        return x.to_bytes(n, "little")

    def frame(self, opcode: int, payload: bytes, fin: bool = True) -> bytes:
        """A complete masked client frame (RFC 6455 5.2)."""
        n = len(payload)
        b0 = (0x80 if fin else 0) | opcode
        if n < 126:
            head = bytes((b0, 0x80 | n))
        elif n < 65536:
            head = struct.pack("!BBH", b0, 0xFE, n)
        else:
            head = struct.pack("!BBQ", b0, 0xFF, n)
        return head + self.key + self.mask(payload)


def close_payload(code: int = 1000, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class WSClient(asyncio.Protocol):
    """Base client connection: handshake, frame parsing, ping/pong and close.

    Subclasses override ``on_open``, ``on_message``, ``on_closed``. Every callback is
    synchronous and runs inside ``data_received``.
    """

    __slots__ = (
        "_buf",
        "_close_sent",
        "_frag",
        "_frag_op",
        "_host",
        "_open",
        "_path",
        "_port",
        "close_code",
        "closed",
        "masker",
        "transport",
    )

    def __init__(self, host: str, port: int, path: str) -> None:
        self._host = host
        self._port = port
        self._path = path
        self._buf = b""
        self._open = False
        self._close_sent = False
        self._frag: list[bytes] | None = None
        self._frag_op = 0
        self.closed = False
        self.close_code: int | None = None
        self.masker = Masker()
        self.transport: Any = None

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(upgrade_request(self._host, self._port, self._path))

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._open:
            head = parse_response_head(data)
            if head is None:
                if len(data) > 65536:
                    self.fail("handshake_error")
                else:
                    self._buf = data
                return
            status, hlen = head
            if status != 101:
                self.fail(f"handshake_http_{status}")
                return
            self._open = True
            data = data[hlen:]
            self.on_open()
            if not data or self.closed:
                return
        pos = 0
        n = len(data)
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            ln = b1 & 0x7F
            if ln < 126:
                hdr = 2
            elif ln == 126:
                if n - pos < 4:
                    break
                ln = (data[pos + 2] << 8) | data[pos + 3]
                hdr = 4
            else:
                if n - pos < 10:
                    break
                ln = int.from_bytes(data[pos + 2 : pos + 10], "big")
                hdr = 10
            if b1 & 0x80:
                self.fail("protocol_error")  # RFC 6455 5.1: servers never mask
                return
            end = pos + hdr + ln
            if end > n:
                break
            payload = data[pos + hdr : end]
            pos = end
            op = b0 & 0x0F
            if (b0 & 0x80) and (op in (OP_TEXT, OP_BINARY)):
                self.on_message(op, payload)
            else:
                self._other_frame(b0 & 0x80, op, payload)
            if self.closed:
                return
        if pos < n:
            self._buf = data[pos:]

    def _other_frame(self, fin: int, op: int, payload: bytes) -> None:
        if op == OP_PING:
            self.send(OP_PONG, payload)
        elif op == OP_PONG:
            pass
        elif op == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self._close_sent:
                self._close_sent = True
                self.transport.write(self.masker.frame(OP_CLOSE, payload[:2]))
            self.on_close_frame(self.close_code, payload[2:])
            self.transport.close()
        elif op in (OP_TEXT, OP_BINARY):  # first fragment
            self._frag = [payload]
            self._frag_op = op
        elif op == OP_CONT and self._frag is not None:
            self._frag.append(payload)
            if fin:
                whole = b"".join(self._frag)
                self._frag = None
                self.on_message(self._frag_op, whole)
        else:
            self.fail("protocol_error")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed(exc)

    # -- actions ------------------------------------------------------------
    def send(self, opcode: int, payload: bytes) -> None:
        self.transport.write(self.masker.frame(opcode, payload))

    def send_close(self, code: int = 1000) -> None:
        """Start the closing handshake; the server is expected to close TCP first."""
        if not self._close_sent and self.transport is not None and not self.closed:
            self._close_sent = True
            self.transport.write(self.masker.frame(OP_CLOSE, close_payload(code)))

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def fail(self, kind: str) -> None:
        """A protocol-level failure: report it and drop the connection."""
        self.on_failure(kind)
        self.abort()

    # -- callbacks ----------------------------------------------------------
    def on_open(self) -> None:
        """The 101 arrived."""

    def on_message(self, opcode: int, payload: bytes) -> None:
        """A complete text or binary message."""

    def on_close_frame(self, code: int, reason: bytes) -> None:
        """The server sent a close frame (our reply is already written)."""

    def on_failure(self, kind: str) -> None:
        """Handshake or framing failure of ``kind``."""

    def on_closed(self, exc: Exception | None) -> None:
        """The TCP connection is gone."""
