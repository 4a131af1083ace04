"""JSON and msgpack codecs: round-trips, refusals, encode-once framing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codecs import (
    DEFAULT_SUBPROTOCOL,
    JSON,
    MSGPACK,
    SUBPROTOCOLS,
    CodecError,
    frame_message,
)
from protocol.errors import ProtocolError
from protocol.frames import OP_BINARY, OP_TEXT, BinaryMessage, FrameParser, TextMessage

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | ints | floats | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
msgpack_values = st.recursive(
    st.none() | st.booleans() | ints | floats | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_roundtrip(value: Any) -> None:
    data = JSON.encode(value)
    assert isinstance(data, bytes)
    assert JSON.decode(data) == value
    assert JSON.decode(data.decode()) == value


@settings(max_examples=300, deadline=None)
@given(msgpack_values)
def test_msgpack_roundtrip(value: Any) -> None:
    data = MSGPACK.encode(value)
    assert isinstance(data, bytes)
    assert MSGPACK.decode(data) == value


@pytest.mark.parametrize(
    "bad", [b"", b"{", b"{'a': 1}", b"[1,]", b"\xff", "nul", b"1 2", "[" * 2000 + "]" * 2000]
)
def test_json_decode_errors(bad: str | bytes) -> None:
    with pytest.raises(CodecError) as info:
        JSON.decode(bad)
    assert isinstance(info.value, ProtocolError)
    assert info.value.reason == "invalid json"


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\xc1",  # never-used type byte
        b"\x92\x01",  # truncated array
        b"\x01\x02",  # trailing data
        b"\xa2\xff\xfe",  # invalid UTF-8 str
        b"\x81\x91\x01\x02",  # list as a map key
        b"\xdd\xff\xff\xff\xff",  # array claiming 4G items
        b"\x91" * 5000 + b"\xc0",  # nesting beyond the unpacker's stack
        "text frame",
    ],
)
def test_msgpack_decode_errors(bad: str | bytes) -> None:
    with pytest.raises(CodecError):
        MSGPACK.decode(bad)


def test_encode_errors() -> None:
    with pytest.raises(CodecError):
        JSON.encode(object())
    with pytest.raises(CodecError):
        JSON.encode(2**70)
    with pytest.raises(CodecError):
        MSGPACK.encode(object())
    with pytest.raises(CodecError):
        MSGPACK.encode(2**70)


def test_registry() -> None:
    assert SUBPROTOCOLS == {"uvgate.json": JSON, "uvgate.msgpack": MSGPACK}
    assert SUBPROTOCOLS[DEFAULT_SUBPROTOCOL] is JSON
    assert (JSON.name, JSON.opcode) == ("json", OP_TEXT)
    assert (MSGPACK.name, MSGPACK.opcode) == ("msgpack", OP_BINARY)


def test_frame_message_once_for_many() -> None:
    obj = {"event": "message", "channel": "c", "data": {"n": 1, "s": "é"}}
    frame = frame_message(JSON, obj)
    assert frame[0] == 0x81
    [event] = FrameParser(require_mask=False).feed(frame)
    assert isinstance(event, TextMessage)
    assert JSON.decode(event.data) == obj
    frame = frame_message(MSGPACK, obj)
    assert frame[0] == 0x82
    [event] = FrameParser(require_mask=False).feed(frame)
    assert isinstance(event, BinaryMessage)
    assert MSGPACK.decode(event.data) == obj
    big = {"data": "x" * 70000}
    [event] = FrameParser(require_mask=False, max_message_size=1 << 20).feed(
        frame_message(JSON, big)
    )
    assert isinstance(event, TextMessage)
    assert JSON.decode(event.data) == big
