"""WebSocket framing (RFC 6455 5): a sans-I/O parser and encoders.

``FrameParser.feed(bytes) -> list[Event]`` returns whole messages, reassembled
from fragments, with control frames in wire order. The hot path (one small
masked frame arriving alone in one chunk) is handled without touching the
buffer; everything else goes through a bytearray that is only ever appended
to and cut at the front, so a large frame arriving in many chunks costs O(n).
"""

from __future__ import annotations

import codecs
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .closecodes import is_valid_peer_code
from .deflate import Inflater
from .errors import FrameError

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_FIN = 0x80
_RSV1 = 0x40
_MASK_BIT = 0x80
# RFC 6455 5.5: control frames carry at most 125 payload bytes.
MAX_CONTROL_PAYLOAD = 125
# RFC 6455 5.5.1: close payload = 2-byte code + reason, so the reason gets 123.
MAX_CLOSE_REASON = 123

_unpack_H = struct.Struct("!H").unpack_from
_unpack_Q = struct.Struct("!Q").unpack_from
_pack_BBH = struct.Struct("!BBH").pack
_pack_BBQ = struct.Struct("!BBQ").pack
_from_bytes = int.from_bytes

# Optional C speedup with a pure-Python twin (the engineering guide's pattern):
# websockets ships a tiny C ``apply_mask``; when it is importable, (un)masking
# costs ~2 us per 64 KiB instead of ~100 us. Both paths pass the same tests.
_c_apply_mask: Callable[[bytes | bytearray, bytes | bytearray], bytes] | None
try:
    from websockets import speedups as _speedups

    _c_apply_mask = _speedups.apply_mask
except ImportError:  # pragma: no cover - depends on the environment
    _c_apply_mask = None
SPEEDUPS = _c_apply_mask is not None
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _holds_surrogate_start(decoder: codecs.IncrementalDecoder) -> bool:
    """CPython's incremental decoder refuses most invalid prefixes at once but keeps
    ED A0..BF (the start of a UTF-16 surrogate, never valid UTF-8) until the third
    byte arrives; this says whether the decoder sits on such a prefix now."""
    pending = decoder.getstate()[0]
    return len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0


_EMPTY = b""
# Never appended to: a fragmented message starts a new list (_start_fragmented).
_NO_PARTS: list[bytes | bytearray] = []


@dataclass(frozen=True, slots=True)
class TextMessage:
    data: str


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseFrame:
    code: int  # 1005 (NO_STATUS) when the close frame had no body
    reason: str


Event = TextMessage | BinaryMessage | Ping | Pong | CloseFrame

# Hot-path constructors. A frozen slotted dataclass's __init__ goes through
# object.__setattr__ per field (~0.45 us); setting the slot through its member
# descriptor skips that (~0.3 us) and keeps the instance just as frozen.
_new = object.__new__
_set_text = TextMessage.__dict__["data"].__set__
_set_binary = BinaryMessage.__dict__["data"].__set__


def _text_message(data: str) -> TextMessage:
    msg = _new(TextMessage)
    _set_text(msg, data)
    return msg


def _binary_message(data: bytes) -> BinaryMessage:
    msg = _new(BinaryMessage)
    _set_binary(msg, data)
    return msg


# One close frame per connection: the same shortcut.
_set_close_code = CloseFrame.__dict__["code"].__set__
_set_close_reason = CloseFrame.__dict__["reason"].__set__


def _close_frame(code: int, reason: str) -> CloseFrame:
    frame = _new(CloseFrame)
    _set_close_code(frame, code)
    _set_close_reason(frame, reason)
    return frame


def mask_payload(mask: bytes | bytearray, data: bytes | bytearray) -> bytes:
    """XOR ``data`` with the repeating 4-byte ``mask`` (RFC 6455 5.3).

    No per-byte Python loop: small payloads take one big-integer XOR, large
    ones four strided ``bytes.translate`` passes (see ``_unmask``). Masking is
    its own inverse, so this also unmasks.
    """
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    if not data:
        return b""
    out = _unmask(bytes(mask) + bytes(data), 4, 4 + len(data))
    return out if type(out) is bytes else bytes(out)


# Per-mask-byte XOR translation tables, for bulk unmasking with bytes.translate.
_XOR_TABLES = [bytes(a ^ b for a in range(256)) for b in range(256)]
# Below this size one big-integer XOR wins; above it the int conversions cost
# more than four strided translate passes (measured in bench/micro_protocol.py).
_INT_XOR_MAX = 1024


def _unmask(buf: bytes | bytearray, start: int, end: int) -> bytes | bytearray:
    """Unmask buf[start:end] with the 4-byte key just before it (RFC 6455 5.3)."""
    c_mask = _c_apply_mask
    if c_mask is not None:
        return c_mask(buf[start:end], buf[start - 4 : start])
    n = end - start
    if n <= _INT_XOR_MAX:
        if not n:
            return b""
        key = (buf[start - 4 : start] * ((n + 3) >> 2))[:n]
        return (_from_bytes(buf[start:end], "little") ^ _from_bytes(key, "little")).to_bytes(
            n, "little"
        )
    out = bytearray(buf[start:end])
    t = _XOR_TABLES
    # Every 4th byte shares a mask byte: four C-speed passes over strided slices.
    out[0::4] = out[0::4].translate(t[buf[start - 4]])
    out[1::4] = out[1::4].translate(t[buf[start - 3]])
    out[2::4] = out[2::4].translate(t[buf[start - 2]])
    out[3::4] = out[3::4].translate(t[buf[start - 1]])
    return out


_BARE_CLOSE_EVENTS: dict[int, CloseFrame] = {}


def _close_event(payload: bytes) -> CloseFrame:
    """Validate a close frame body (RFC 6455 5.5.1, 7.4)."""
    n = len(payload)
    if n == 0:
        return _close_frame(1005, "")
    if n == 1:
        raise FrameError(1002, "invalid close frame")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_peer_code(code):
        raise FrameError(1002, "invalid close code")
    if n == 2:
        # A code and no reason, as nearly every client closes: the event is immutable,
        # so one is shared per code (at most one per valid code, a few thousand).
        event = _BARE_CLOSE_EVENTS.get(code)
        if event is None:
            event = _BARE_CLOSE_EVENTS[code] = _close_frame(code, "")
        return event
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(1007, "invalid utf-8 in close reason") from None
    return _close_frame(code, reason)


class _PartialText:
    """Incremental UTF-8 check of one text frame whose payload is still arriving."""

    __slots__ = ("checked", "decoder", "masked", "payload_start")

    def __init__(
        self, decoder: codecs.IncrementalDecoder, payload_start: int, masked: bool
    ) -> None:
        self.decoder = decoder
        self.payload_start = payload_start  # offset of the payload in the parser's buffer
        self.masked = masked
        self.checked = 0  # payload bytes validated so far


class FrameParser:
    """Turns received bytes into events; one instance per connection.

    ``require_mask=True`` is the server side (RFC 6455 5.1: clients mask every
    frame); ``False`` is the client side, where a masked frame is an error.
    After a CloseFrame, or after a FrameError was raised, input is ignored.
    """

    __slots__ = (
        "_buf",
        "_decoder",
        "_done",
        "_frag_compressed",
        "_frag_op",
        "_frag_parts",
        "_frag_size",
        "_inflater",
        "_max",
        "_need",
        "_require_mask",
        "_utf8_check",
    )

    def __init__(
        self,
        *,
        max_message_size: int = 65536,
        require_mask: bool = True,
        deflate: Inflater | None = None,
    ) -> None:
        self._max = max_message_size
        self._require_mask = require_mask
        self._inflater = deflate
        # Shared empty placeholders until a frame spans two reads: an idle
        # connection's parser then owns no buffer and no list (~110 bytes less
        # per connection, which is what a gateway holds by the hundred thousand).
        self._buf: bytes | bytearray = _EMPTY
        self._need = 0  # bytes the buffer must hold before parsing can progress
        self._done = False
        self._frag_op = -1  # opcode of the open fragmented message, -1 if none
        self._frag_parts: list[bytes | bytearray] | list[str] = _NO_PARTS
        self._frag_size = 0
        self._frag_compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        # Set while an uncompressed text frame is only partly received (see
        # _PartialText); None otherwise, so whole frames never pay for it.
        self._utf8_check: _PartialText | None = None

    @property
    def closed(self) -> bool:
        """True once a close frame was parsed or a protocol error raised."""
        return self._done

    def feed_message(self, data: bytes) -> str | bytes | None:
        """The hot path: the payload of ``data`` if it is exactly one whole message.

        When nothing is buffered, no fragmented message is open and ``data`` is one
        complete masked FIN text/binary frame with a 7-bit length (b1 == 0x80 |
        (n - 6)) or a 16-bit one (b1 == 0xFE and the length field == n - 8), return
        its payload: ``str`` for text (UTF-8 checked), ``bytes`` for binary. Else
        return None and consume nothing: call ``feed``. Skipping the event object
        and the list is measurable when every message of an echo takes this path.
        """
        n = len(data)
        b0 = data[0] if n else 0
        if (b0 != 0x81 and b0 != 0x82) or self._buf or self._frag_op >= 0 or not self._require_mask:
            return None
        b1 = data[1] if n > 1 else 0
        if 6 <= n <= 131 and b1 == n + 0x7A:  # 0x80 + (n - 6)
            hlen = 6
        elif b1 == 0xFE and 134 <= n <= 65543 and ((data[2] << 8) | data[3]) == n - 8:
            hlen = 8
        else:
            return None
        if n - hlen > self._max or self._done:
            return None  # the general path says what is wrong
        c_mask = _c_apply_mask
        if c_mask is not None:
            raw = c_mask(data[hlen:], data[hlen - 4 : hlen])
        else:
            unmasked = _unmask(data, hlen, n)
            raw = unmasked if type(unmasked) is bytes else bytes(unmasked)
        if b0 == 0x82:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._done = True
            raise FrameError(1007, "invalid utf-8") from None

    def feed(self, data: bytes, *, tried_message: bool = False) -> list[Event]:
        """All events in ``data``. ``tried_message``: the caller already got None from
        ``feed_message`` for these bytes, so the single-message check is not repeated."""
        if self._done:
            return []
        events: list[Event] | None = None
        try:
            n = len(data)
            b0 = data[0] if n else 0
            if (b0 == 0x81 or b0 == 0x82) and not tried_message:
                message = self.feed_message(data)
                if message is not None:
                    if type(message) is str:
                        return [_text_message(message)]
                    return [_binary_message(message)]  # type: ignore[arg-type]
            elif (
                (b0 == 0x88 or b0 == 0x89 or b0 == 0x8A)
                and 6 <= n <= 131
                and data[1] == n + 0x7A
                and not self._buf
                and self._require_mask
            ):
                # A lone masked control frame (close, ping, pong), <= 125 bytes by
                # construction of the length test (RFC 6455 5.5).
                payload = _unmask(data, 6, n)
                payload = payload if type(payload) is bytes else bytes(payload)
                if b0 == 0x88:
                    self._done = True  # RFC 6455 5.5.1: nothing after a close
                    return [_close_event(payload)]
                return [Ping(payload) if b0 == 0x89 else Pong(payload)]
            events = []
            return self._feed_buffered(data, events)
        except FrameError as exc:
            self._done = True
            self._buf = _EMPTY
            self._frag_parts = _NO_PARTS
            self._utf8_check = None
            if events:
                exc.events = events
            raise

    def _feed_buffered(self, data: bytes, events: list[Event]) -> list[Event]:
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
            if len(buf) < self._need:
                # Still waiting for the rest of a known frame: O(1), plus the UTF-8
                # check of the new bytes when it is a text frame.
                if self._utf8_check is not None:
                    self._check_partial_text()
                return []
        else:
            # Nothing pending: parse straight from the caller's bytes and only
            # copy what is left over, so a big frame in one chunk is not copied.
            buf = data
        blen = len(buf)
        pos = 0
        require_mask = self._require_mask
        if self._utf8_check is not None:
            self._utf8_check = None  # the frame it watched completes in this call
        partial_text = 0  # header length of a trailing text frame still incomplete
        while blen - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            op = b0 & 0x0F
            length = b1 & 0x7F
            # Validate the first two bytes before waiting for the rest, so a
            # peer speaking garbage is refused at once.
            # RFC 6455 5.2: RSV bits need a negotiated extension; RFC 7692 6:
            # permessage-deflate uses RSV1 on the first frame of a data message.
            if b0 & 0x70 and ((b0 & 0x70) != _RSV1 or self._inflater is None or op not in (1, 2)):
                raise FrameError(1002, "reserved bits set")
            if op >= 8:
                if op > OP_PONG:
                    raise FrameError(1002, "unknown opcode")
                # RFC 6455 5.5: control frames are never fragmented, <= 125 bytes.
                if not b0 & _FIN:
                    raise FrameError(1002, "fragmented control frame")
                if length > MAX_CONTROL_PAYLOAD:
                    raise FrameError(1002, "control frame too long")
            elif op == OP_CONT:
                if self._frag_op < 0:
                    raise FrameError(1002, "unexpected continuation frame")
            elif op <= OP_BINARY:
                # RFC 6455 5.4: a fragmented message must finish before the next.
                if self._frag_op >= 0:
                    raise FrameError(1002, "expected continuation frame")
            else:
                raise FrameError(1002, "unknown opcode")
            masked = b1 & _MASK_BIT
            # RFC 6455 5.1: clients must mask, servers must not.
            if require_mask:
                if not masked:
                    raise FrameError(1002, "frame not masked")
            elif masked:
                raise FrameError(1002, "masked frame from server")

            hlen = 2
            if length == 126:
                if blen - pos < 4:
                    break
                length = _unpack_H(buf, pos + 2)[0]
                hlen = 4
            elif length == 127:
                if blen - pos < 10:
                    break
                length = _unpack_Q(buf, pos + 2)[0]
                # RFC 6455 5.2: the most significant bit must be 0.
                if length >> 63:
                    raise FrameError(1002, "invalid frame length")
                hlen = 10
            # Refuse an oversized message from its declared length, before a
            # single payload byte is buffered (RFC 6455 10.4).
            if op < 8 and self._frag_size + length > self._max:
                raise FrameError(1009, "message too big")
            if masked:
                hlen += 4
            end = pos + hlen + length
            if end > blen:
                # RFC 6455 8.1: invalid UTF-8 should fail fast, also inside one frame
                # that arrives in pieces (Autobahn 6.4.3/6.4.4); compressed payloads
                # can only be checked once inflated.
                if (op == OP_TEXT and not b0 & _RSV1) or (
                    op == OP_CONT and self._decoder is not None
                ):
                    partial_text = hlen
                break
            payload = _unmask(buf, pos + hlen, end) if masked else bytes(buf[pos + hlen : end])
            pos = end

            if op >= 8:
                if op == OP_PING:
                    events.append(Ping(bytes(payload)))
                elif op == OP_PONG:
                    events.append(Pong(bytes(payload)))
                else:
                    events.append(_close_event(bytes(payload)))
                    # RFC 6455 5.5.1: nothing after a close frame is processed.
                    self._done = True
                    self._buf = _EMPTY
                    self._need = 0
                    return events
            elif op != OP_CONT:
                if b0 & _FIN:
                    events.append(self._message(op, payload, bool(b0 & _RSV1)))
                else:
                    self._start_fragmented(op, payload, bool(b0 & _RSV1))
            else:
                self._continue_fragmented(payload, bool(b0 & _FIN), events)

        rest = blen - pos
        if buf is data:
            if rest:
                self._buf = bytearray(memoryview(data)[pos:])
        elif pos:
            del self._buf[:pos]  # type: ignore[union-attr]  # O(1) amortised: bytearray moves its start
            if not self._buf:
                self._buf = _EMPTY
        # Remember how much is needed so a big frame's chunks skip re-parsing.
        self._need = self._frame_size_hint() if rest >= 2 else 0
        if partial_text:
            self._watch_partial_text(partial_text)
        return events

    def _watch_partial_text(self, payload_start: int) -> None:
        """Start checking the text frame at the front of ``_buf`` as its bytes arrive."""
        decoder = _utf8_decoder()
        if self._decoder is not None:
            # A continuation frame: carry over a code point the last fragment split.
            decoder.setstate(self._decoder.getstate())
        masked = bool(self._buf[1] & _MASK_BIT)
        self._utf8_check = _PartialText(decoder, payload_start, masked)
        self._check_partial_text()

    def _check_partial_text(self) -> None:
        """Validate the payload bytes received since the last check (the output is
        dropped: the complete frame is decoded as usual, so whole frames stay as fast)."""
        check = self._utf8_check
        assert check is not None
        buf = self._buf
        start = check.payload_start + check.checked
        end = len(buf)
        if end <= start:
            return
        chunk = buf[start:end]
        if check.masked:
            mask = buf[check.payload_start - 4 : check.payload_start]
            shift = check.checked & 3  # the mask repeats every 4 payload bytes
            if shift:
                mask = mask[shift:] + mask[:shift]
            chunk = mask_payload(mask, chunk)
        try:
            check.decoder.decode(chunk)
        except UnicodeDecodeError:
            raise FrameError(1007, "invalid utf-8") from None
        if _holds_surrogate_start(check.decoder):
            raise FrameError(1007, "invalid utf-8")
        check.checked = end - check.payload_start

    def _frame_size_hint(self) -> int:
        buf = self._buf
        length = buf[1] & 0x7F
        hlen = 2
        if length == 126:
            if len(buf) < 4:
                return 4
            length = _unpack_H(buf, 2)[0]
            hlen = 4
        elif length == 127:
            if len(buf) < 10:
                return 10
            length = _unpack_Q(buf, 2)[0]
            hlen = 10
        if buf[1] & _MASK_BIT:
            hlen += 4
        return hlen + length

    def _message(self, op: int, payload: bytes | bytearray, compressed: bool) -> Event:
        if compressed:
            assert self._inflater is not None  # RSV1 was checked against it
            payload = self._inflater.decompress(payload)
        if op == OP_TEXT:
            try:
                return _text_message(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise FrameError(1007, "invalid utf-8") from None
        # Large unmasked payloads come back as bytearray; events carry bytes.
        return _binary_message(payload if type(payload) is bytes else bytes(payload))

    def _start_fragmented(self, op: int, payload: bytes | bytearray, compressed: bool) -> None:
        self._frag_op = op
        self._frag_compressed = compressed
        self._frag_size = len(payload)
        if op == OP_TEXT and not compressed:
            # Decode as fragments arrive so invalid UTF-8 fails fast (RFC 6455
            # 8.1) rather than after the whole message was buffered.
            decoder = self._decoder = _utf8_decoder()
            try:
                self._frag_parts = [decoder.decode(payload)]
            except UnicodeDecodeError:
                raise FrameError(1007, "invalid utf-8") from None
            if _holds_surrogate_start(decoder):
                raise FrameError(1007, "invalid utf-8")
        else:
            self._frag_parts = [payload]

    def _continue_fragmented(
        self, payload: bytes | bytearray, fin: bool, events: list[Event]
    ) -> None:
        self._frag_size += len(payload)
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(payload, fin)
            except UnicodeDecodeError:
                raise FrameError(1007, "invalid utf-8") from None
            if not fin and _holds_surrogate_start(decoder):
                raise FrameError(1007, "invalid utf-8")
            parts_s: list[str] = self._frag_parts  # type: ignore[assignment]
            if text:  # a flood of empty fragments must not grow the list
                parts_s.append(text)
            if fin:
                events.append(TextMessage("".join(parts_s)))
                self._reset_fragments()
            return
        parts_b: list[bytes | bytearray] = self._frag_parts  # type: ignore[assignment]
        if payload:
            parts_b.append(payload)
        if fin:
            events.append(self._message(self._frag_op, b"".join(parts_b), self._frag_compressed))
            self._reset_fragments()

    def _reset_fragments(self) -> None:
        self._frag_op = -1
        self._frag_parts = _NO_PARTS
        self._frag_size = 0
        self._frag_compressed = False
        self._decoder = None


_LOCAL_ONLY_CODES = frozenset({1005, 1006, 1015})
_BARE_CLOSE: dict[int, bytes] = {}  # encode_close(code) without a reason, by code

# -- encoders -----------------------------------------------------------------

# Precomputed 2-byte headers for the commonest frames (FIN, 7-bit length).
_TEXT_HEADERS = [bytes((_FIN | OP_TEXT, n)) for n in range(126)]
_BINARY_HEADERS = [bytes((_FIN | OP_BINARY, n)) for n in range(126)]


def _header(b0: int, n: int) -> bytes:
    if n < 126:
        # The usual frame (final, uncompressed text or binary): a prebuilt header.
        if b0 == _FIN | OP_TEXT:
            return _TEXT_HEADERS[n]
        if b0 == _FIN | OP_BINARY:
            return _BINARY_HEADERS[n]
        return bytes((b0, n))
    if n < 65536:
        return _pack_BBH(b0, 126, n)
    return _pack_BBQ(b0, 127, n)


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One unmasked (server to client) frame (RFC 6455 5.2)."""
    if opcode >= 8:
        if opcode > OP_PONG:
            raise ValueError("invalid opcode")
        if not fin or len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frames must be final and <= 125 bytes")
    elif opcode > OP_BINARY:
        raise ValueError("invalid opcode")
    b0 = opcode | (_FIN if fin else 0) | (_RSV1 if rsv1 else 0)
    return _header(b0, len(payload)) + payload


def encode_text(data: str) -> bytes:
    payload = data.encode("utf-8")
    n = len(payload)
    if n < 126:
        return _TEXT_HEADERS[n] + payload
    return _header(_FIN | OP_TEXT, n) + payload


def encode_binary(data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        return _BINARY_HEADERS[n] + data
    return _header(_FIN | OP_BINARY, n) + data


def encode_close(code: int = 1000, reason: str = "") -> bytes:
    """A close frame; 1005 means "no status" and is sent with an empty body.

    RFC 6455 7.4.1: 1005, 1006 and 1015 must never appear on the wire, so
    they all become an empty body (which the peer reads as 1005).
    """
    if code in _LOCAL_ONLY_CODES:
        return b"\x88\x00"
    if not reason:
        # Nearly every connection ends with one of a few codes and no reason: such a
        # frame is built once per code (at most 4000 of them: 1000-4999 are cached).
        frame = _BARE_CLOSE.get(code)
        if frame is None:
            frame = b"\x88\x02" + code.to_bytes(2, "big")
            if 1000 <= code < 5000:
                _BARE_CLOSE[code] = frame
        return frame
    raw = reason.encode("utf-8")
    if len(raw) > MAX_CLOSE_REASON:
        # RFC 6455 5.5: cut to fit, dropping any partial trailing code point.
        raw = raw[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode("utf-8")
    payload = code.to_bytes(2, "big") + raw
    return bytes((_FIN | OP_CLOSE, len(payload))) + payload


def encode_ping(payload: bytes = b"") -> bytes:
    return encode_frame(OP_PING, payload)


def encode_pong(payload: bytes = b"") -> bytes:
    return encode_frame(OP_PONG, payload)


def encode_client_frame(
    opcode: int,
    payload: bytes,
    *,
    mask: bytes | None = None,
    fin: bool = True,
    rsv1: bool = False,
) -> bytes:
    """One masked (client to server) frame; a random mask unless one is given."""
    if mask is None:
        mask = os.urandom(4)  # RFC 6455 5.3: unpredictable masking key
    elif len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    b0 = opcode | (_FIN if fin else 0) | (_RSV1 if rsv1 else 0)
    n = len(payload)
    if n < 126:
        head = bytes((b0, _MASK_BIT | n))
    elif n < 65536:
        head = _pack_BBH(b0, _MASK_BIT | 126, n)
    else:
        head = _pack_BBQ(b0, _MASK_BIT | 127, n)
    return head + mask + mask_payload(mask, payload)
