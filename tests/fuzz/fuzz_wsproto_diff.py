"""Target ``wsproto_diff``: our frame codec against wsproto's, both directions.

The input describes a sequence of messages (text, binary, ping, pong, close; data
messages in 1-4 fragments, optionally with a ping between fragments). Properties:

* client -> server: wsproto's client encoder (masked) produces bytes that our server-side
  FrameParser decodes, whole and in random pieces, to exactly the described events;
* server -> client: our encoders (encode_text / encode_binary / encode_frame fragments /
  encode_ping / encode_pong / encode_close) produce bytes that wsproto's client-side
  decoder reads back as exactly the described messages.

No error is declared: both sides see only valid frames, so any exception is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsproto.frame_protocol import FrameProtocol, Opcode

from protocol.frames import (
    OP_BINARY,
    OP_CONT,
    OP_TEXT,
    BinaryMessage,
    CloseFrame,
    Event,
    FrameParser,
    Ping,
    Pong,
    TextMessage,
    encode_binary,
    encode_close,
    encode_frame,
    encode_ping,
    encode_pong,
    encode_text,
)

from .reader import Reader, splits

CODES = (None, 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
MAX_ITEMS = 24


@dataclass(frozen=True)
class Item:
    kind: str  # "text", "binary", "ping", "pong", "close"
    parts: tuple[str, ...] | tuple[bytes, ...] = ()
    payload: bytes = b""
    code: int | None = None
    reason: str = ""
    ping_inside: bool = False  # a ping between the first two fragments


def _cut(value: str | bytes, n: int) -> tuple[str, ...] | tuple[bytes, ...]:
    step = max(1, -(-len(value) // n))
    return tuple(value[i : i + step] for i in range(0, len(value), step)) or (value[:0],)  # type: ignore[return-value]


def describe(reader: Reader) -> list[Item]:
    items: list[Item] = []
    while reader.left and len(items) < MAX_ITEMS:
        head = reader.byte()
        kind = ("text", "binary", "ping", "pong", "close")[head % 5]
        raw = reader.chunk(2048)
        if kind in ("text", "binary"):
            value: str | bytes = raw.decode("utf-8", "replace") if kind == "text" else raw
            parts = _cut(value, 1 + (head >> 3) % 4)
            items.append(Item(kind, parts, ping_inside=bool(head & 0x80) and len(parts) > 1))
        elif kind in ("ping", "pong"):
            items.append(Item(kind, payload=raw[:125]))
        else:
            code = CODES[(head >> 3) % len(CODES)]
            reason = raw.decode("utf-8", "replace") if code is not None else ""
            items.append(Item(kind, code=code, reason=reason))
            break  # nothing follows a close
    return items


def expected_events(items: list[Item]) -> list[Event]:
    events: list[Event] = []
    for item in items:
        if item.kind == "text":
            if item.ping_inside:
                events.append(Ping(b"in"))
            events.append(TextMessage("".join(item.parts)))  # type: ignore[arg-type]
        elif item.kind == "binary":
            if item.ping_inside:
                events.append(Ping(b"in"))
            events.append(BinaryMessage(b"".join(item.parts)))  # type: ignore[arg-type]
        elif item.kind == "ping":
            events.append(Ping(item.payload))
        elif item.kind == "pong":
            events.append(Pong(item.payload))
        else:
            reason = item.reason.encode()[:123].decode("utf-8", "ignore")
            events.append(CloseFrame(item.code or 1005, reason))
    return events


def wsproto_client_bytes(items: list[Item]) -> bytes:
    client = FrameProtocol(client=True, extensions=[])
    out = bytearray()
    for item in items:
        if item.kind in ("text", "binary"):
            for i, part in enumerate(item.parts):
                out += client.send_data(part, fin=i == len(item.parts) - 1)
                if i == 0 and item.ping_inside:
                    out += client.ping(b"in")
        elif item.kind == "ping":
            out += client.ping(item.payload)
        elif item.kind == "pong":
            out += client.pong(item.payload)
        else:
            out += client.close(item.code, item.reason or None)
    return bytes(out)


def our_server_bytes(items: list[Item]) -> bytes:
    out = bytearray()
    for item in items:
        if item.kind in ("text", "binary"):
            text = item.kind == "text"
            if len(item.parts) == 1:
                part = item.parts[0]
                out += encode_text(part) if text else encode_binary(part)  # type: ignore[arg-type]
                continue
            for i, part in enumerate(item.parts):
                payload = part.encode() if isinstance(part, str) else part
                opcode = OP_CONT if i else OP_TEXT if text else OP_BINARY
                out += encode_frame(opcode, payload, fin=i == len(item.parts) - 1)
                if i == 0 and item.ping_inside:
                    out += encode_ping(b"in")
        elif item.kind == "ping":
            out += encode_ping(item.payload)
        elif item.kind == "pong":
            out += encode_pong(item.payload)
        else:
            out += encode_close(1005 if item.code is None else item.code, item.reason)
    return bytes(out)


def wsproto_client_reads(wire: bytes) -> list[Event]:
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(wire)
    events: list[Event] = []
    parts: list[str | bytes] = []
    for frame in client.received_frames():
        op = frame.opcode
        if op is Opcode.PING:
            events.append(Ping(bytes(frame.payload)))
        elif op is Opcode.PONG:
            events.append(Pong(bytes(frame.payload)))
        elif op is Opcode.CLOSE:
            code, reason = frame.payload
            events.append(CloseFrame(int(code), reason))
        else:
            parts.append(frame.payload)
            if frame.message_finished:
                if isinstance(parts[0], str):
                    events.append(TextMessage("".join(parts)))  # type: ignore[arg-type]
                else:
                    events.append(BinaryMessage(b"".join(bytes(p) for p in parts)))  # type: ignore[misc]
                parts = []
    assert not parts
    return events


def check(data: bytes) -> None:
    reader = Reader(data)
    seed = reader.byte()
    items = describe(reader)
    expected = expected_events(items)

    wire = wsproto_client_bytes(items)
    for pieces in ([wire], splits(wire, seed)):
        parser = FrameParser(max_message_size=1 << 20)
        got: list[Event] = []
        for piece in pieces:
            got += parser.feed(piece)
        assert got == expected, (got, expected)

    assert wsproto_client_reads(our_server_bytes(items)) == expected
