"""The binary messages of the cluster (protocol/cluster.py): round trips and refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import cluster as wire

ids = st.text(alphabet="0123456789.", min_size=1, max_size=40)


@given(st.binary(max_size=300), st.one_of(st.none(), ids))
def test_deliver_round_trip(payload: bytes, exclude: str | None) -> None:
    assert wire.decode(wire.encode_deliver(payload, exclude)) == wire.Deliver(payload, exclude)


@given(ids, st.booleans(), st.binary(max_size=200))
def test_join_marker_round_trip(socket_id: str, first: bool, payload: bytes) -> None:
    decoded = wire.decode(wire.encode_joined(socket_id, first, payload))
    assert decoded == wire.Joined(socket_id, first, payload if first else b"")


def test_terminate_and_native_round_trip() -> None:
    assert wire.decode(wire.encode_terminate()) == wire.Terminate()
    native = wire.Native("broadcast", ["1.2", "3.4"], {"a": [1, "x"]}, 1000, "", "5.6", "100")
    assert wire.decode(wire.encode_native(native)) == native
    block = wire.Native("block", "10.0.0.9", code=42, origin="200")
    assert wire.decode(wire.encode_native(block)) == block


def test_the_lua_layout_is_the_python_layout() -> None:
    # scripts.lua builds D and J messages by hand: 'D' .. char(#exclude) .. exclude .. payload
    assert wire.decode(b"D" + bytes([3]) + b"1.2" + b"{}") == wire.Deliver(b"{}", "1.2")
    assert wire.decode(b"D\x00payload") == wire.Deliver(b"payload", None)
    assert wire.decode(b'J\x031.21{"x":1}') == wire.Joined("1.2", True, b'{"x":1}')
    assert wire.decode(b"J\x031.20") == wire.Joined("1.2", False, b"")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"X",
        b"D",
        b"D\x05ab",  # an id longer than what follows
        b"D\x02\xff\xfe",  # a non-ASCII id
        b"J\x031.2",  # no flag
        b"J\x031.2x",  # a bad flag
        b"Textra",
        b"N\xc1",  # not msgpack
        b"N\x93\x01\x02\x03",  # msgpack, not our list
        b"N" + bytes([0x97]) + b"\xa1s\xc0\xc0\xa1x\xa0\xc0\xa0",  # code is not an int
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(wire.ClusterMessageError):
        wire.decode(data)


def test_ids_are_bounded() -> None:
    with pytest.raises(ValueError):
        wire.encode_deliver(b"", "x" * 300)
