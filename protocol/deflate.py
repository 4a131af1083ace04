"""permessage-deflate (RFC 7692): negotiation, inflate with a size bound, deflate.

Sans-I/O: pure functions and small stateful compressors over ``zlib``. The
frame parser owns *when* to inflate (RSV1 on the first frame of a data
message, RFC 7692 6); this module only knows *how*.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .errors import FrameError

EXTENSION_NAME = "permessage-deflate"

# RFC 7692 7.2.1: the sender removes the 4 trailing octets 0x00 0x00 0xff 0xff
# left by a sync flush; RFC 7692 7.2.2: the receiver appends them back.
_TAIL = b"\x00\x00\xff\xff"

_KNOWN_PARAMS = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The negotiated parameters, from the server's point of view."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


# RFC 9110 5.6.3: optional whitespace is SP / HTAB; str.strip() would also remove
# \x85 and \xa0, which a latin-1 decoded header may hold.
_OWS = " \t"


def _parse_offer(offer: str) -> tuple[str, dict[str, str | None]] | None:
    """Split one extension offer into its name and parameters; None if malformed."""
    parts = offer.split(";")
    name = parts[0].strip(_OWS).lower()
    params: dict[str, str | None] = {}
    for raw in parts[1:]:
        key, sep, value = raw.partition("=")
        key = key.strip(_OWS).lower()
        if not key:
            return None
        if key in params:
            # RFC 7692 7: an offer with a duplicated parameter must be declined.
            return None
        if sep:
            value = value.strip(_OWS)
            # RFC 6455 9.1: values may be quoted strings.
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            params[key] = value
        else:
            params[key] = None
    return name, params


def _window_bits(value: str | None) -> int | None:
    """RFC 7692 7.1.2: 1*DIGIT without leading zero, in 8..15; None if invalid."""
    # isascii() first: str.isdigit() also accepts "¹²³" and other digits int() refuses.
    if value is None or not value.isascii() or not value.isdigit():
        return None
    if value[0] == "0" or len(value) > 2:
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


def _accept(params: dict[str, str | None]) -> tuple[DeflateParams, str] | None:
    if not params.keys() <= _KNOWN_PARAMS:
        return None  # RFC 7692 7: unknown parameter -> decline this offer
    answer = [EXTENSION_NAME]
    server_nct = False
    client_nct = False
    server_bits = 15
    client_bits = 15
    if "server_no_context_takeover" in params:
        if params["server_no_context_takeover"] is not None:
            return None
        server_nct = True
        answer.append("server_no_context_takeover")
    if "client_no_context_takeover" in params:
        if params["client_no_context_takeover"] is not None:
            return None
        client_nct = True
        answer.append("client_no_context_takeover")
    if "server_max_window_bits" in params:
        bits = _window_bits(params["server_max_window_bits"])
        # zlib silently turns a raw-deflate window of 8 into 9 (zlib >= 1.2.9),
        # which could emit distances the peer agreed never to see: decline 8.
        if bits is None or bits == 8:
            return None
        server_bits = bits
        answer.append(f"server_max_window_bits={bits}")
    if "client_max_window_bits" in params:
        value = params["client_max_window_bits"]
        if value is not None:
            bits = _window_bits(value)
            if bits is None:
                return None
            client_bits = bits
            # RFC 7692 7.1.2.2: answer with a value no larger than offered.
            answer.append(f"client_max_window_bits={bits}")
        # Without a value the client merely supports the parameter; we keep 15.
    return (
        DeflateParams(server_nct, client_nct, server_bits, client_bits),
        "; ".join(answer),
    )


def negotiate(offer_header: str) -> tuple[DeflateParams, str] | None:
    """Accept the first acceptable permessage-deflate offer (RFC 7692 5).

    ``offer_header`` is the (comma-joined) Sec-WebSocket-Extensions request
    header. Returns the parameters and the response header value, or None when
    no offer is acceptable (the connection then proceeds uncompressed).
    """
    # Quoted values never contain commas for this extension (they are digits),
    # so a plain split on "," separates the offers (RFC 6455 9.1).
    for offer in offer_header.split(","):
        parsed = _parse_offer(offer)
        if parsed is None or parsed[0] != EXTENSION_NAME:
            continue
        result = _accept(parsed[1])
        if result is not None:
            return result
    return None


class Inflater:
    """Decompresses client messages, refusing output larger than ``max_size``."""

    __slots__ = ("_bits", "_d", "_max_size", "_no_context")

    def __init__(self, params: DeflateParams, max_size: int) -> None:
        # Raw inflate at 9 bits decodes any stream built with an 8-bit window.
        self._bits = -max(9, params.client_max_window_bits)
        self._no_context = params.client_no_context_takeover
        self._max_size = max_size
        self._d = zlib.decompressobj(self._bits)

    def decompress(self, payload: bytes | bytearray) -> bytes:
        d = self._d
        if self._no_context or d.eof:
            # RFC 7692 7.1.1.2: without context takeover each message starts a
            # fresh LZ77 window; a sender that set BFINAL also ended its stream.
            d = self._d = zlib.decompressobj(self._bits)
        limit = self._max_size + 1
        try:
            # max_length bounds the allocation: a zip bomb stops at limit bytes.
            out = d.decompress(payload, limit)
            if len(out) < limit and not d.unconsumed_tail:
                out += d.decompress(_TAIL, limit - len(out))
        except zlib.error as exc:
            raise FrameError(1007, "invalid compressed data") from exc
        if len(out) > self._max_size or d.unconsumed_tail:
            raise FrameError(1009, "message too big")
        return out


class Deflater:
    """Compresses server messages for frames sent with RSV1 set."""

    __slots__ = ("_c", "_flush_mode")

    def __init__(self, params: DeflateParams, *, level: int = 6, mem_level: int = 8) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, -params.server_max_window_bits, mem_level)
        # RFC 7692 7.1.1.1: without context takeover the next message must not
        # reference this one; a full flush resets the dictionary and still ends
        # on the same empty stored block as a sync flush, so one object serves.
        self._flush_mode = (
            zlib.Z_FULL_FLUSH if params.server_no_context_takeover else zlib.Z_SYNC_FLUSH
        )

    def compress(self, payload: bytes) -> bytes:
        c = self._c
        out = c.compress(payload) + c.flush(self._flush_mode)
        if out.endswith(_TAIL):
            out = out[:-4]
        # RFC 7692 7.2.3.6: an empty message may be sent as a single 0x00 octet.
        return out or b"\x00"
