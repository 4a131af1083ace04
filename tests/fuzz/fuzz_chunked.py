"""Target ``chunked``: the chunked request-body decoder, against itself and h11.

Declared error: ``HandshakeError`` 400, 413 or 431. Properties: whole, random pieces and
byte by byte give the same (body, rest) or the same status; the body never exceeds
``max_body``; and every stream we accept, h11 (a well-kept HTTP/1.1 implementation)
decodes to the same body and leaves the same bytes after it.
"""

from __future__ import annotations

from collections.abc import Iterable

import h11

from protocol.chunked import ChunkedDecoder
from protocol.errors import HandshakeError

from .reader import Reader, splits

MAX_BODIES = (0, 16, 1024, 65536)
HEAD = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

Outcome = tuple[bytes, bytes] | int | None


def run(max_body: int, pieces: Iterable[bytes]) -> Outcome:
    decoder = ChunkedDecoder(max_body=max_body)
    result: Outcome = None
    try:
        for piece in pieces:
            result = decoder.feed(piece)
    except HandshakeError as exc:
        assert exc.status in (400, 413, 431), exc.status
        return exc.status
    if result is not None:
        assert decoder.done and len(result[0]) <= max_body
    return result


def h11_body(stream: bytes) -> tuple[bytes, bytes]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(HEAD + stream)
    body = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body, conn.trailing_data[0]
        else:
            assert isinstance(event, h11.Request), event


def check(data: bytes) -> None:
    reader = Reader(data)
    max_body = MAX_BODIES[reader.byte() & 3]
    seed = reader.byte()
    stream = reader.rest()
    whole = run(max_body, [stream])
    assert run(max_body, splits(stream, seed)) == whole
    assert run(max_body, [stream[i : i + 1] for i in range(len(stream))]) == whole
    if isinstance(whole, tuple):
        assert h11_body(stream) == whole
