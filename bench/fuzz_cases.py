"""What ``uvgate-bench fuzz`` sends: one hostile or broken input per connection.

Each kind builds a ``Plan``: the bytes to write (with pauses between pieces), whether a
valid upgrade (and native authentication) comes first, and how long to wait for an
answer. Plans come from a seeded ``random.Random``, so a run is reproducible with
``--seed``. The kinds cover the request head (slowloris, oversize headers, pipelining,
random bytes, broken request lines, keys, versions, extension offers, bodies) and, after
a good upgrade, the frames (truncated, bad UTF-8, unmasked and wrongly masked, huge
declared lengths, reserved bits and opcodes, broken fragmentation and control frames,
bad close frames, compressed frames that were never negotiated, random bytes, bit-flipped
valid streams).
"""

from __future__ import annotations

import json
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .tokens import issue_token
from .wsclient import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, Masker

__all__ = ["KINDS", "Plan", "Target", "make_plan"]


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: str
    secret: str
    deflate: bool = False  # also try compressed-frame kinds with a deflate offer


@dataclass(slots=True)
class Plan:
    kind: str
    pieces: list[tuple[float, bytes]] = field(default_factory=list)  # (pause before, bytes)
    upgrade: bool = False  # a valid upgrade request first (frame kinds)
    auth: bool = False  # then the native first message with a valid token
    offer: str = ""  # Sec-WebSocket-Extensions of that upgrade
    requests: int = 0  # HTTP requests sent (pipelining): count the answers
    wait: float = 3.0  # seconds to wait for an answer once everything is sent
    half_close: bool = False  # then shut down our side and wait as long again


def _hostport(t: Target) -> str:
    return f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"


def upgrade_head(t: Target, *, key: bytes | None = None, extra: str = "") -> bytes:
    nonce = key if key is not None else os.urandom(16).hex()[:22].encode() + b"=="
    return (
        (
            f"GET {t.path} HTTP/1.1\r\nHost: {_hostport(t)}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        ).encode()
        + nonce
        + b"\r\n"
        + extra.encode("latin-1")
        + b"\r\n"
    )


def auth_frame(t: Target, masker: Masker, user: str) -> bytes:
    token = issue_token(t.secret, user, ttl=3600)
    return masker.frame(OP_TEXT, json.dumps({"type": "auth", "token": token}).encode())


def _frame(
    op: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
    masked: bool = True,
) -> bytes:
    """A client frame with every field under control (for the broken ones)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not masked:
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + Masker(key).mask(payload)


# -- request head kinds ----------------------------------------------------------------


def _slowloris(r: random.Random, t: Target) -> Plan:
    head = upgrade_head(t)
    cut = r.randrange(1, len(head))  # never completes: the server must time it out
    gap = r.choice((0.2, 0.5, 1.0))
    pieces = [(gap if i else 0.0, head[i : i + 1]) for i in range(cut)][: int(12 / gap)]
    # Trickle for up to 12 s, then wait until 15 s in all: past a 10 s handshake timeout.
    return Plan("slowloris", pieces, wait=max(3.0, 15.0 - gap * (len(pieces) - 1)))


def _oversize_headers(r: random.Random, t: Target) -> Plan:
    if r.random() < 0.5:
        extra = f"X-Big: {'a' * r.choice((9000, 20000, 70000))}\r\n"
    else:
        extra = "".join(f"X-H{i}: v\r\n" for i in range(r.choice((65, 200, 1000))))
    return Plan("oversize_headers", [(0.0, upgrade_head(t, extra=extra))])


def _pipelining(r: random.Random, t: Target) -> Plan:
    n = r.choice((2, 10, 100, 198, 300))
    path = r.choice(("/up", "/", "/nope"))
    req = f"GET {path} HTTP/1.1\r\nHost: {_hostport(t)}\r\n\r\n".encode()
    return Plan("pipelining", [(0.0, req * n)], requests=n, wait=5.0)


def _random_head(r: random.Random, t: Target) -> Plan:
    return Plan("random_bytes_head", [(0.0, r.randbytes(r.randrange(1, 4096)))])


_BAD_LINES = (
    b"GET /ws HTTP/2.0\r\n",
    b"GET /ws HTTP/1.1 extra\r\n",
    b"GET  /ws HTTP/1.1\r\n",
    b"G\x00T /ws HTTP/1.1\r\n",
    b"GET /w\rs HTTP/1.1\r\n",
    b"GET /ws HTTP/1.1\n",
    b"\xff\xfe /ws HTTP/1.1\r\n",
    b"POST /ws HTTP/1.1\r\n",
    b"GET /ws HTTP/1.0\r\n",
)


def _bad_request_line(r: random.Random, t: Target) -> Plan:
    head = upgrade_head(t)
    line = r.choice(_BAD_LINES).replace(b"/ws", t.path.encode())
    return Plan("bad_request_line", [(0.0, line + head[head.index(b"\r\n") + 2 :])])


def _bad_key(r: random.Random, t: Target) -> Plan:
    key = r.choice(
        (
            b"\x80AAAAAAAAAAAAAAAAAAAAA==",  # issue 11, crash 1
            b"short==",
            b"A" * 24,
            b"dGhlIHNhbXBsZSBub25jZQ",
            "é".encode("latin-1") * 22 + b"==",
            b"",
        )
    )
    return Plan("bad_key", [(0.0, upgrade_head(t, key=key))])


def _bad_version(r: random.Random, t: Target) -> Plan:
    head = upgrade_head(t).replace(
        b"Version: 13", b"Version: " + r.choice((b"8", b"14", b"\xb9\xb3", b""))
    )
    return Plan("bad_ws_version", [(0.0, head)])


_OFFERS = (
    "permessage-deflate; client_max_window_bits=\xb9",  # issue 11, crash 2
    "permessage-deflate;server_max_window_bits=\xb2",
    "permessage-deflate; server_max_window_bits=99",
    "permessage-deflate; foo=bar",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    'permessage-deflate; server_max_window_bits="1\x00"',
    "x-webkit-deflate-frame, permessage-deflate;;;",
    "permessage-deflate\x85",
    ";" * 500,
)


def _bad_extension(r: random.Random, t: Target) -> Plan:
    offer = r.choice(_OFFERS)
    # A 101 without deflate (or a 400) is right; send a ping to see the connection works.
    return Plan(
        "bad_extension_offer",
        [(0.0, upgrade_head(t, extra=f"Sec-WebSocket-Extensions: {offer}\r\n"))],
        wait=2.0,
    )


def _bad_body(r: random.Random, t: Target) -> Plan:
    host = _hostport(t)
    choice = r.randrange(4)
    if choice == 0:
        data = f"POST /up HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    elif choice == 1:
        data = f"POST /up HTTP/1.1\r\nHost: {host}\r\nContent-Length: 99999999999\r\n\r\nx"
    elif choice == 2:
        data = f"POST /up HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    else:
        data = f"POST /up HTTP/1.1\r\nHost: {host}\r\nContent-Length: \u00b9\r\n\r\n"
    return Plan("bad_http_body", [(0.0, data.encode("latin-1", "replace"))])


def _truncated_head(r: random.Random, t: Target) -> Plan:
    head = upgrade_head(t)
    piece = head[: r.randrange(1, len(head) - 2)]
    return Plan("truncated_head_half_close", [(0.0, piece)], wait=1.5, half_close=True)


# -- frame kinds (after a valid upgrade, authenticated or not) ---------------------------


def _after_upgrade(
    kind: str,
    r: random.Random,
    frames: bytes,
    *,
    wait: float = 3.0,
    pieces: list[tuple[float, bytes]] | None = None,
    offer: str = "",
) -> Plan:
    auth = r.random() < 0.5
    return Plan(kind, pieces or [(0.0, frames)], upgrade=True, auth=auth, offer=offer, wait=wait)


def _text(r: random.Random, n: int) -> bytes:
    return r.choice((b"x", b"hello ", "κόσμε".encode())) * n


def _truncated_frame(r: random.Random, t: Target) -> Plan:
    frame = _frame(r.choice((OP_TEXT, OP_BINARY)), _text(r, r.randrange(1, 400)))
    return _after_upgrade("truncated_frame", r, frame[: r.randrange(1, len(frame))])


def _bad_utf8(r: random.Random, t: Target) -> Plan:
    bad = r.choice((b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xce"))
    payload = _text(r, 3) + bad + _text(r, r.randrange(0, 200))
    frame = _frame(OP_TEXT, payload)
    if r.random() < 0.5:  # Autobahn 6.4.3: the bad byte arrives in the middle of the frame
        cut = len(frame) - len(payload) + 3 + len(bad)
        return _after_upgrade("bad_utf8", r, b"", pieces=[(0.0, frame[:cut]), (0.5, frame[cut:])])
    return _after_upgrade("bad_utf8", r, frame)


def _bad_mask(r: random.Random, t: Target) -> Plan:
    payload = _text(r, 5)
    if r.random() < 0.5:
        frame = _frame(OP_TEXT, payload, masked=False)  # RFC 6455 5.1: must be masked
    else:
        head = _frame(OP_TEXT, payload, mask=b"\x01\x02\x03\x04")
        frame = head[:2] + r.randbytes(4) + head[6:]  # payload masked with another key
    return _after_upgrade("bad_mask", r, frame)


def _huge_length(r: random.Random, t: Target) -> Plan:
    n = r.choice((1 << 62, (1 << 63) + 5, 70_000_000, 2**32))
    head = struct.pack("!BBQ", 0x80 | r.choice((OP_TEXT, OP_BINARY)), 0xFF, n)
    return _after_upgrade("huge_length", r, head + os.urandom(4) + b"xxxx")


def _reserved(r: random.Random, t: Target) -> Plan:
    if r.random() < 0.5:
        frame = _frame(OP_TEXT, b"hi", rsv=r.choice((1, 2, 4, 7)))
    else:
        frame = _frame(r.choice((3, 4, 7, 11, 15)), b"hi")
    return _after_upgrade("reserved_bits_or_opcode", r, frame)


def _bad_fragments(r: random.Random, t: Target) -> Plan:
    choice = r.randrange(4)
    if choice == 0:
        frames = _frame(OP_CONT, b"orphan")
    elif choice == 1:
        frames = _frame(OP_TEXT, b"a", fin=False) + _frame(OP_TEXT, b"b")
    elif choice == 2:
        frames = _frame(OP_PING, b"p", fin=False)
    else:
        frames = _frame(OP_PING, b"p" * 126)
    return _after_upgrade("bad_fragmentation_or_control", r, frames)


def _bad_close(r: random.Random, t: Target) -> Plan:
    payload = r.choice(
        (b"\x03", b"\x03\xe7", b"\x13\x88", b"\xff\xff", b"\x03\xe8\xff\xfe", b"\x03\xed")
    )
    return _after_upgrade("bad_close", r, _frame(OP_CLOSE, payload))


def _compressed(r: random.Random, t: Target) -> Plan:
    data = r.choice((b"\x00\x01garbage", b"\xff" * 20, bytes(30)))
    offer = "permessage-deflate" if t.deflate and r.random() < 0.5 else ""
    return _after_upgrade("compressed_frames", r, _frame(OP_TEXT, data, rsv=4), offer=offer)


def _too_big(r: random.Random, t: Target) -> Plan:
    size = r.choice((70_000, 1_100_000))
    frame = _frame(OP_BINARY, b"z" * size)
    return _after_upgrade("message_too_big", r, frame, wait=4.0)


def _random_frames(r: random.Random, t: Target) -> Plan:
    return _after_upgrade("random_bytes_frames", r, r.randbytes(r.randrange(1, 2048)))


def _ping_flood(r: random.Random, t: Target) -> Plan:
    n = r.choice((10, 100, 1000))
    return _after_upgrade("ping_flood", r, _frame(OP_PING, b"p") * n)


def _byte_by_byte(r: random.Random, t: Target) -> Plan:
    frame = _frame(OP_TEXT, _text(r, 10))
    pieces = [(0.01 if i else 0.0, frame[i : i + 1]) for i in range(len(frame))]
    return _after_upgrade("valid_frame_byte_by_byte", r, b"", pieces=pieces)


def _bit_flips(r: random.Random, t: Target) -> Plan:
    stream = bytearray(
        _frame(OP_TEXT, _text(r, 5), fin=False) + _frame(OP_PING, b"x") + _frame(OP_CONT, b"end")
    )
    for _ in range(r.randrange(1, 4)):
        stream[r.randrange(len(stream))] ^= 1 << r.randrange(8)
    return _after_upgrade("bit_flipped_frames", r, bytes(stream))


Builder = Callable[[random.Random, Target], Plan]

# kind -> (builder, weight); the weights keep slow kinds (slowloris) rare.
KINDS: dict[str, tuple[Builder, int]] = {
    "slowloris": (_slowloris, 1),
    "oversize_headers": (_oversize_headers, 3),
    "pipelining": (_pipelining, 3),
    "random_bytes_head": (_random_head, 4),
    "bad_request_line": (_bad_request_line, 3),
    "bad_key": (_bad_key, 3),
    "bad_ws_version": (_bad_version, 2),
    "bad_extension_offer": (_bad_extension, 3),
    "bad_http_body": (_bad_body, 2),
    "truncated_head_half_close": (_truncated_head, 2),
    "truncated_frame": (_truncated_frame, 2),
    "bad_utf8": (_bad_utf8, 3),
    "bad_mask": (_bad_mask, 3),
    "huge_length": (_huge_length, 3),
    "reserved_bits_or_opcode": (_reserved, 3),
    "bad_fragmentation_or_control": (_bad_fragments, 3),
    "bad_close": (_bad_close, 3),
    "compressed_frames": (_compressed, 2),
    "message_too_big": (_too_big, 1),
    "random_bytes_frames": (_random_frames, 4),
    "ping_flood": (_ping_flood, 2),
    "valid_frame_byte_by_byte": (_byte_by_byte, 1),
    "bit_flipped_frames": (_bit_flips, 4),
}


def make_plan(r: random.Random, target: Target, kinds: list[str] | None = None) -> Plan:
    names = kinds or list(KINDS)
    weights = [KINDS[n][1] for n in names]
    name = r.choices(names, weights)[0]
    return KINDS[name][0](r, target)
