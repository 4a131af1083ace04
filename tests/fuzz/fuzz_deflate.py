"""Target ``deflate``: permessage-deflate negotiation, inflate against zlib, round trips.

Declared errors: none from ``negotiate`` (it declines with None); ``FrameError`` 1007 or
1009 from ``Inflater.decompress``. Modes (first byte % 3):

0. ``negotiate(offer)``: an accepted offer's answer is a header-safe string that
   negotiates to exactly the same parameters and answer.
1. ``Inflater`` on arbitrary bytes matches a plain zlib raw-inflate of payload + 00 00 ff
   ff: valid input gives zlib's output, or 1009 exactly when that exceeds the limit;
   invalid input is refused with 1007 (or 1009 when its output passed the limit before
   the bad byte).
2. ``Deflater`` -> ``Inflater`` round trip of several messages (context takeover or not,
   window bits 9-15), and a zlib stream decoder of the same bytes agrees.
"""

from __future__ import annotations

import zlib

from protocol.deflate import DeflateParams, Deflater, Inflater, negotiate
from protocol.errors import FrameError

from .reader import Reader

TAIL = b"\x00\x00\xff\xff"


def _params(reader: Reader) -> DeflateParams:
    b = reader.byte()
    return DeflateParams(
        server_no_context_takeover=bool(b & 1),
        client_no_context_takeover=bool(b & 2),
        server_max_window_bits=9 + (b >> 2) % 7,
        client_max_window_bits=8 + (b >> 5),
    )


def _negotiate(offer: str) -> None:
    result = negotiate(offer)
    if result is None:
        return
    params, answer = result
    assert all(" " <= c <= "~" for c in answer), answer  # goes into a response header
    assert 9 <= params.server_max_window_bits <= 15
    assert 8 <= params.client_max_window_bits <= 15
    assert negotiate(answer) == (params, answer)


def _zlib_reference(bits: int, payload: bytes) -> tuple[bytes, bool]:
    """What plain zlib makes of payload + 00 00 ff ff: (output, failed). When it fails,
    the output is what it produced before the bad byte (fed one byte at a time)."""
    data = payload + TAIL
    try:
        return zlib.decompressobj(-bits).decompress(data), False
    except zlib.error:
        pass
    d = zlib.decompressobj(-bits)
    out = b""
    for i in range(len(data)):
        try:
            out += d.decompress(data[i : i + 1])
        except zlib.error:
            break
    return out, True


# One input byte completes at most 8 codes of at most 258 output bytes each: how far the
# output seen before an error may lag behind what zlib produced from the same bytes.
_SLACK = 8 * 258


def _inflate_vs_zlib(params: DeflateParams, max_size: int, payload: bytes) -> None:
    expected, failed = _zlib_reference(max(9, params.client_max_window_bits), payload)
    try:
        got: bytes | int = Inflater(params, max_size).decompress(payload)
    except FrameError as exc:
        got = exc.close_code
    if not failed:
        # Valid: the same bytes as zlib, or 1009 exactly when they exceed the limit.
        assert got == (1009 if len(expected) > max_size else expected), got
    elif len(expected) + _SLACK > max_size:
        # Invalid, but the output may pass the limit before the bad byte is reached.
        assert got in (1007, 1009), got
    else:
        assert got == 1007, got


def _round_trip(params: DeflateParams, messages: list[bytes]) -> None:
    deflater = Deflater(params)
    # The peer's view: what the server sends, the client inflates with the server's side.
    peer = DeflateParams(
        client_no_context_takeover=params.server_no_context_takeover,
        client_max_window_bits=params.server_max_window_bits,
    )
    inflater = Inflater(peer, 1 << 16)
    stream = zlib.decompressobj(-params.server_max_window_bits)
    for message in messages:
        wire = deflater.compress(message)
        assert inflater.decompress(wire) == message
        if params.server_no_context_takeover:
            stream = zlib.decompressobj(-params.server_max_window_bits)
        assert stream.decompress(wire + TAIL) == message


def check(data: bytes) -> None:
    reader = Reader(data)
    mode = reader.byte() % 3
    if mode == 0:
        _negotiate(reader.rest().decode("latin-1"))
    elif mode == 1:
        params = _params(reader)
        max_size = (0, 10, 1000, 1 << 16)[reader.byte() & 3]
        _inflate_vs_zlib(params, max_size, reader.rest())
    else:
        params = _params(reader)
        messages = []
        while reader.left and len(messages) < 16:
            messages.append(reader.chunk(1024))
        _round_trip(params, messages)
