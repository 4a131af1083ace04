"""uvgate's sans-I/O protocol core: handshake, chunked bodies, frames, permessage-deflate,
codecs.

Nothing in this package performs I/O or imports asyncio: bytes go in, typed
events and bytes to send come out.
"""

# First: with UVGATE_PURE_PYTHON=1 every module below loads from its .py source.
from . import purepy  # noqa: F401  # isort: skip
from . import closecodes
from .chunked import ChunkedDecoder
from .closecodes import is_valid_peer_code
from .codecs import (
    DEFAULT_SUBPROTOCOL,
    JSON,
    MSGPACK,
    SUBPROTOCOLS,
    Codec,
    CodecError,
    frame_message,
)
from .deflate import DeflateParams, Deflater, Inflater, negotiate
from .errors import FrameError, HandshakeError, ProtocolError
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    BinaryMessage,
    CloseFrame,
    Event,
    FrameParser,
    Ping,
    Pong,
    TextMessage,
    encode_binary,
    encode_client_frame,
    encode_close,
    encode_frame,
    encode_ping,
    encode_pong,
    encode_text,
    mask_payload,
)
from .handshake import (
    MAX_HEADERS,
    MAX_REQUEST_SIZE,
    Request,
    Upgrade,
    accept_key,
    accept_response,
    check_upgrade,
    http_response,
    is_upgrade,
    parse_request,
    reject_response,
)

__all__ = [
    "DEFAULT_SUBPROTOCOL",
    "JSON",
    "MAX_HEADERS",
    "MAX_REQUEST_SIZE",
    "MSGPACK",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "SUBPROTOCOLS",
    "BinaryMessage",
    "ChunkedDecoder",
    "CloseFrame",
    "Codec",
    "CodecError",
    "DeflateParams",
    "Deflater",
    "Event",
    "FrameError",
    "FrameParser",
    "HandshakeError",
    "Inflater",
    "Ping",
    "Pong",
    "ProtocolError",
    "Request",
    "TextMessage",
    "Upgrade",
    "accept_key",
    "accept_response",
    "check_upgrade",
    "closecodes",
    "encode_binary",
    "encode_client_frame",
    "encode_close",
    "encode_frame",
    "encode_ping",
    "encode_pong",
    "encode_text",
    "frame_message",
    "http_response",
    "is_upgrade",
    "is_valid_peer_code",
    "mask_payload",
    "negotiate",
    "parse_request",
    "reject_response",
]
