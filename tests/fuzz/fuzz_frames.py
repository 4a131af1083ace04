"""Target ``frames``: FrameParser fed whole, in random pieces, byte by byte, and the way
the gateway feeds it (``feed_message`` first, then ``feed(tried_message=True)``).

Declared error: ``FrameError`` with a close code of 1002, 1007 or 1009. Property: the
four ways give the same events, the same error (close code) after the same events, and
the same ``closed`` state. Input: an options byte (server or client side, an Inflater
with one of four parameter sets or none, the message size limit), a seed byte for the
random cuts, then the stream.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.deflate import DeflateParams, Inflater
from protocol.errors import FrameError
from protocol.frames import BinaryMessage, Event, FrameParser, TextMessage

from .reader import Reader, splits

CLOSE_CODES = frozenset({1002, 1007, 1009})
MAX_SIZES = (16, 200, 4096, 1 << 20)
DEFLATE = (
    None,
    DeflateParams(),
    DeflateParams(client_no_context_takeover=True, client_max_window_bits=9),
    DeflateParams(server_no_context_takeover=True, client_max_window_bits=12),
)

Outcome = tuple[list[Event], int | None, bool]


def new_parser(options: int) -> FrameParser:
    params = DEFLATE[(options >> 1) & 3]
    max_size = MAX_SIZES[(options >> 3) & 3]
    return FrameParser(
        max_message_size=max_size,
        require_mask=not options & 1,
        deflate=None if params is None else Inflater(params, max_size),
    )


def run(options: int, pieces: Iterable[bytes], *, like_gateway: bool = False) -> Outcome:
    parser = new_parser(options)
    events: list[Event] = []
    try:
        for piece in pieces:
            if like_gateway:
                message = parser.feed_message(piece)
                if message is not None:
                    events.append(
                        TextMessage(message) if type(message) is str else BinaryMessage(message)  # type: ignore[arg-type]
                    )
                    continue
                events += parser.feed(piece, tried_message=True)
            else:
                events += parser.feed(piece)
    except FrameError as exc:
        assert exc.close_code in CLOSE_CODES, exc.close_code
        assert parser.closed
        events += exc.events  # type: ignore[arg-type]
        return events, exc.close_code, True
    return events, None, parser.closed


def check(data: bytes) -> None:
    reader = Reader(data)
    options = reader.byte()
    seed = reader.byte()
    stream = reader.rest()
    whole = run(options, [stream])
    assert run(options, splits(stream, seed)) == whole
    assert run(options, [stream[i : i + 1] for i in range(len(stream))]) == whole
    assert run(options, splits(stream, seed + 1), like_gateway=True) == whole
