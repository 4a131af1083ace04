"""Message codecs selected by WebSocket subprotocol (RFC 6455 1.9).

A codec turns application objects into message payloads and back. JSON goes
in text frames, msgpack in binary frames; ``frame_message`` encodes and frames
once so a broadcast writes the same bytes to every subscriber.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack
import orjson

from .errors import ProtocolError
from .frames import OP_BINARY, OP_TEXT, encode_frame


class CodecError(ProtocolError):
    """The payload is not valid for the connection's codec."""


class Codec(Protocol):
    name: str
    opcode: int

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: str | bytes) -> Any: ...


class JsonCodec:
    """orjson: RFC 8259 JSON, UTF-8 bytes out, nesting bounded by orjson (1024)."""

    __slots__ = ()
    name = "json"
    opcode = OP_TEXT

    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj)
        except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
            raise CodecError("cannot encode as json") from exc

    def decode(self, data: str | bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CodecError("invalid json") from exc


# msgpack's C unpacker keeps its own bounded stack; deeper nesting is an error
# (msgpack.StackError), so hostile input cannot recurse the interpreter.
_MSGPACK_DECODE_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


class MsgpackCodec:
    """msgpack with the bin/str distinction (use_bin_type) and str decoding."""

    __slots__ = ()
    name = "msgpack"
    opcode = OP_BINARY

    def encode(self, obj: Any) -> bytes:
        try:
            packed: bytes = msgpack.packb(obj, use_bin_type=True)
            return packed
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError("cannot encode as msgpack") from exc

    def decode(self, data: str | bytes) -> Any:
        if isinstance(data, str):
            raise CodecError("msgpack needs a binary message")
        try:
            return msgpack.unpackb(data, raw=False)
        except _MSGPACK_DECODE_ERRORS as exc:
            raise CodecError("invalid msgpack") from exc


JSON: Codec = JsonCodec()
MSGPACK: Codec = MsgpackCodec()

SUBPROTOCOLS: dict[str, Codec] = {"uvgate.json": JSON, "uvgate.msgpack": MSGPACK}
DEFAULT_SUBPROTOCOL = "uvgate.json"


def frame_message(codec: Codec, obj: Any) -> bytes:
    """Encode ``obj`` and wrap it in one final frame with the codec's opcode."""
    return encode_frame(codec.opcode, codec.encode(obj))
