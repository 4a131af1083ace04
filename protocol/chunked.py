"""Sans-I/O decoder of a chunked request body (RFC 9112 7.1), bounded everywhere.

    decoder = ChunkedDecoder(max_body=1 << 20)
    for data in reads:
        done = decoder.feed(data)
        if done is not None:
            body, rest = done  # rest: pipelined bytes after the body
            break

Strict where leniency has served request smuggling: chunk sizes are 1-16 ASCII hex
digits (no sign, no ``0x``, no ``_``, no whitespace, no other script's digits), every
line ends in CRLF (no bare LF or CR), chunk data is followed by exactly CRLF. Chunk extensions (RFC 9112 7.1.1) and trailer fields (7.1.2) are checked for
syntax and skipped: nothing in them reaches the caller. Bounds: the decoded body (413,
refused from a chunk's declared size before its data is buffered), a size line with its
extensions (400) and the trailer section (431). Errors are ``HandshakeError`` with the
status to answer, like the request head's.
"""

from __future__ import annotations

import re

from .errors import HandshakeError

__all__ = ["MAX_CHUNK_LINE", "MAX_TRAILERS", "MAX_TRAILER_SIZE", "ChunkedDecoder"]

# A size line is 1-16 hex digits plus extensions, which no client needs many of.
MAX_CHUNK_LINE = 4096
# The trailer section as a whole (field lines and the final CRLF) and its field count.
MAX_TRAILER_SIZE = 8192
MAX_TRAILERS = 64

_CRLF = b"\r\n"
_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
# RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF; chunk-size = 1*HEXDIG (16 bound it to
# 64 bits); chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ),
# ext-val = token / quoted-string (RFC 9110 5.6.4: qdtext and quoted-pair). BWS is
# refused: senders must not generate it (RFC 9110 5.6.3), h11 and other servers refuse
# it before ";", and whitespace a front end and a back end read differently is how
# chunk extensions have been used to smuggle requests.
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_SIZE_LINE = re.compile(rf"([0-9A-Fa-f]{{1,16}})((?:;[{_TCHAR}]+(?:=(?:[{_TCHAR}]+|{_QUOTED}))?)*)")
# RFC 9112 5: field-line = field-name ":" OWS field-value OWS; no obs-fold.
_FIELD_LINE = re.compile(rf"[{_TCHAR}]+:[\t\x20-\x7e\x80-\xff]*")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Feed the bytes that follow a ``Transfer-Encoding: chunked`` request head.

    ``feed`` returns None until the last chunk and the trailer section are in, then
    ``(body, rest)``; ``rest`` holds whatever came after the body (a pipelined
    request). Raises ``HandshakeError``: 400 for bad framing, 413 when the body would
    exceed ``max_body``, 431 for an oversize trailer section. After an error or the
    end, further input is the caller's (``feed`` then raises 400 / returns the same
    body with the new bytes appended to ``rest``).
    """

    __slots__ = (
        "_body",
        "_buf",
        "_failed",
        "_fields",
        "_left",
        "_max_body",
        "_rest",
        "_state",
        "_trailer",
    )

    def __init__(self, *, max_body: int) -> None:
        if max_body < 0:
            raise ValueError("max_body must be >= 0")
        self._max_body = max_body
        self._body = bytearray()
        self._buf = bytearray()
        self._state = _SIZE
        self._left = 0  # data bytes still to read in the current chunk
        self._trailer = 0  # bytes of the trailer section seen so far
        self._fields = 0  # trailer field lines seen so far
        self._rest = b""
        self._failed = False

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def body_size(self) -> int:
        """Decoded bytes so far (for progress or logging)."""
        return len(self._body)

    def feed(self, data: bytes | bytearray) -> tuple[bytes, bytes] | None:
        if self._failed:
            raise HandshakeError(400, "malformed chunked body")
        if self._state == _DONE:
            self._rest += bytes(data)
            return bytes(self._body), self._rest
        buf = self._buf
        buf += data
        try:
            pos = self._run(buf)
        except HandshakeError:
            self._failed = True
            self._buf = bytearray()
            raise
        if self._state == _DONE:
            self._rest = bytes(buf[pos:])
            self._buf = bytearray()
            return bytes(self._body), self._rest
        del buf[:pos]  # amortised O(1): bytearray moves its start
        return None

    def _run(self, buf: bytearray) -> int:
        """Consume what ``buf`` allows; return the offset of the first unused byte."""
        pos = 0
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._left, end - pos)
                self._body += buf[pos : pos + take]
                pos += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != _CRLF:
                    raise HandshakeError(400, "chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
            elif state == _SIZE:
                line_end = buf.find(_CRLF, pos, pos + MAX_CHUNK_LINE)
                if line_end < 0:
                    self._check_partial_line(buf, pos, end, MAX_CHUNK_LINE, 400)
                    break
                size = self._chunk_size(bytes(buf[pos:line_end]).decode("latin-1"))
                pos = line_end + 2
                if size:
                    if len(self._body) + size > self._max_body:
                        raise HandshakeError(413, "request body too large")
                    self._left = size
                    self._state = _DATA
                else:
                    self._state = _TRAILER  # last-chunk: the trailer section follows
            else:  # _TRAILER
                room = MAX_TRAILER_SIZE - self._trailer
                line_end = buf.find(_CRLF, pos, pos + room)
                if line_end < 0:
                    self._check_partial_line(buf, pos, end, room, 431)
                    break
                line = bytes(buf[pos:line_end]).decode("latin-1")
                self._trailer += line_end + 2 - pos
                pos = line_end + 2
                if not line:
                    self._state = _DONE
                    break
                if _FIELD_LINE.fullmatch(line) is None:
                    raise HandshakeError(400, "malformed trailer field")
                self._fields += 1
                if self._fields > MAX_TRAILERS:
                    raise HandshakeError(431, "too many trailer fields")
        return pos

    @staticmethod
    def _chunk_size(line: str) -> int:
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise HandshakeError(400, "malformed chunk size")
        return int(match.group(1), 16)

    @staticmethod
    def _check_partial_line(buf: bytearray, pos: int, end: int, limit: int, status: int) -> None:
        """No CRLF yet: refuse a line that already broke a rule or its bound."""
        if end - pos >= limit:
            reason = "chunk size line too long" if status == 400 else "trailer section too large"
            raise HandshakeError(status, reason)
        # A bare LF can never become part of a valid line (CR is allowed only last).
        cr = buf.find(b"\r", pos, end)
        if buf.find(b"\n", pos, end) >= 0 or (0 <= cr < end - 1):
            raise HandshakeError(400, "bare CR or LF in chunked framing")
