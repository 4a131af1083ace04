"""permessage-deflate (RFC 7692): negotiation, wsproto interop, bounds."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from protocol.deflate import DeflateParams, Deflater, Inflater, negotiate
from protocol.errors import FrameError
from protocol.frames import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    BinaryMessage,
    FrameParser,
    Ping,
    TextMessage,
    encode_client_frame,
    encode_frame,
)

# -- negotiation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "params", "answer"),
    [
        ("permessage-deflate", DeflateParams(), "permessage-deflate"),
        ("Permessage-Deflate", DeflateParams(), "permessage-deflate"),
        (
            "permessage-deflate; client_max_window_bits",
            DeflateParams(),
            "permessage-deflate",
        ),
        (
            "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
            DeflateParams(server_max_window_bits=12, client_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
        ),
        (
            'permessage-deflate; server_max_window_bits="11"',
            DeflateParams(server_max_window_bits=11),
            "permessage-deflate; server_max_window_bits=11",
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        # The first acceptable offer wins; unacceptable ones are skipped (RFC 7692 5).
        (
            "permessage-deflate; unknown_param, permessage-deflate; server_max_window_bits=9",
            DeflateParams(server_max_window_bits=9),
            "permessage-deflate; server_max_window_bits=9",
        ),
        (
            "x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover",
            DeflateParams(client_no_context_takeover=True),
            "permessage-deflate; client_no_context_takeover",
        ),
    ],
)
def test_negotiate_accepts(offer: str, params: DeflateParams, answer: str) -> None:
    assert negotiate(offer) == (params, answer)


@pytest.mark.parametrize(
    "offer",
    [
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",  # value required
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot honour 8
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        # Crash 2 (issue 11): str.isdigit() accepts superscripts, int() does not.
        "permessage-deflate;server_max_window_bits=\xb2",
        "permessage-deflate; client_max_window_bits=\xb9",
        "permessage-deflate; client_max_window_bits=1\xb3",
        'permessage-deflate; server_max_window_bits="\xb9\xb2"',
        "permessage-deflate; server_max_window_bits=\u0661\u0662",  # Arabic-Indic 12
        # OWS is SP / HTAB only (RFC 9110 5.6.3), not NEL or NBSP.
        "permessage-deflate\x85",
        "permessage-deflate; \xa0client_no_context_takeover",
    ],
)
def test_negotiate_declines(offer: str) -> None:
    assert negotiate(offer) is None


# -- interop with wsproto's PerMessageDeflate ----------------------------------------------


def negotiated_client(**kw: object) -> tuple[FrameProtocol, DeflateParams]:
    ext = PerMessageDeflate(**kw)  # type: ignore[arg-type]
    offer = ext.offer()
    assert isinstance(offer, str)
    result = negotiate("permessage-deflate; " + offer)
    assert result is not None
    params, answer = result
    ext.finalize(answer)
    return FrameProtocol(client=True, extensions=[ext]), params


client_options = st.fixed_dictionaries(
    {
        "client_no_context_takeover": st.booleans(),
        "server_no_context_takeover": st.booleans(),
        "client_max_window_bits": st.integers(9, 15),
        "server_max_window_bits": st.integers(9, 15),
    }
)
payloads = st.one_of(st.text(max_size=300), st.binary(max_size=300), st.just("abc" * 2000))


@settings(max_examples=100, deadline=None)
@given(client_options, st.lists(payloads, min_size=1, max_size=5), st.integers(1, 3))
def test_wsproto_client_to_our_inflater(
    opts: dict[str, object], msgs: list[str | bytes], nfrag: int
) -> None:
    client, params = negotiated_client(**opts)
    parser = FrameParser(max_message_size=1 << 20, deflate=Inflater(params, 1 << 20))
    wire = bytearray()
    expected: list[object] = []
    for msg in msgs:
        step = max(1, len(msg) // nfrag)
        parts = [msg[i : i + step] for i in range(0, len(msg), step)] or [msg]
        for i, part in enumerate(parts):
            wire += client.send_data(part, fin=i == len(parts) - 1)
        wire += client.ping(b"p")
        expected.append(TextMessage(msg) if isinstance(msg, str) else BinaryMessage(msg))
        expected.append(Ping(b"p"))
    assert parser.feed(bytes(wire)) == expected


@settings(max_examples=100, deadline=None)
@given(client_options, st.lists(payloads, min_size=1, max_size=5))
def test_our_deflater_to_wsproto_client(opts: dict[str, object], msgs: list[str | bytes]) -> None:
    client, params = negotiated_client(**opts)
    deflater = Deflater(params)
    wire = bytearray()
    for msg in msgs:
        raw = msg.encode() if isinstance(msg, str) else msg
        opcode = OP_TEXT if isinstance(msg, str) else OP_BINARY
        wire += encode_frame(opcode, deflater.compress(raw), rsv1=True)
    client.receive_bytes(bytes(wire))
    got = []
    for frame in client.received_frames():
        assert frame.message_finished
        assert frame.opcode in (Opcode.TEXT, Opcode.BINARY)
        payload: Any = frame.payload
        got.append(payload if isinstance(payload, str) else bytes(payload))
    assert got == msgs


def test_context_takeover_shrinks_repeats() -> None:
    deflater = Deflater(DeflateParams())
    msg = b'{"event":"update","channel":"prices","data":{"bid":1.2345}}'
    first = deflater.compress(msg)
    second = deflater.compress(msg)
    assert len(second) < len(first)
    nct = Deflater(DeflateParams(server_no_context_takeover=True))
    assert len(nct.compress(msg)) == len(nct.compress(msg))
    inflater = Inflater(DeflateParams(client_no_context_takeover=True), 1000)
    assert inflater.decompress(nct.compress(msg)) == msg
    assert inflater.decompress(nct.compress(msg)) == msg


def test_empty_message() -> None:
    data = Deflater(DeflateParams()).compress(b"")
    assert Inflater(DeflateParams(), 10).decompress(data) == b""


def test_uncompressed_messages_still_allowed() -> None:
    params = DeflateParams()
    parser = FrameParser(deflate=Inflater(params, 1000))
    assert parser.feed(encode_client_frame(OP_TEXT, b"plain")) == [TextMessage("plain")]


def test_fragmented_compressed_message() -> None:
    params = DeflateParams()
    data = Deflater(params).compress(b"hello hello hello")
    stream = (
        encode_client_frame(OP_TEXT, data[:3], fin=False, rsv1=True)
        + encode_client_frame(OP_PING, b"")
        + encode_client_frame(OP_CONT, data[3:])
    )
    parser = FrameParser(deflate=Inflater(params, 1000))
    assert parser.feed(stream) == [Ping(b""), TextMessage("hello hello hello")]


# -- refusals ---------------------------------------------------------------------------------


def expect(parser: FrameParser, data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as info:
        parser.feed(data)
    assert info.value.close_code == code


def test_zip_bomb_is_1009() -> None:
    params = DeflateParams()
    bomb = Deflater(params).compress(b"\x00" * 50_000_000)
    assert len(bomb) < 100_000
    parser = FrameParser(max_message_size=1 << 20, deflate=Inflater(params, 1 << 20))
    expect(parser, encode_client_frame(OP_BINARY, bomb, rsv1=True), 1009)
    with pytest.raises(FrameError) as info:
        Inflater(params, 1000).decompress(Deflater(params).compress(b"a" * 1001))
    assert info.value.close_code == 1009
    assert Inflater(params, 1000).decompress(Deflater(params).compress(b"a" * 1000)) == b"a" * 1000


def test_corrupt_data_is_1007() -> None:
    parser = FrameParser(deflate=Inflater(DeflateParams(), 1000))
    expect(parser, encode_client_frame(OP_TEXT, b"\xff\xff\xff\xff", rsv1=True), 1007)


def test_invalid_utf8_after_inflate_is_1007() -> None:
    params = DeflateParams()
    parser = FrameParser(deflate=Inflater(params, 1000))
    expect(
        parser, encode_client_frame(OP_TEXT, Deflater(params).compress(b"\xff"), rsv1=True), 1007
    )


def test_rsv1_on_control_or_continuation_is_1002() -> None:
    params = DeflateParams()
    expect(
        FrameParser(deflate=Inflater(params, 100)),
        encode_client_frame(OP_PING, b"", rsv1=True),
        1002,
    )
    stream = encode_client_frame(OP_TEXT, b"a", fin=False) + encode_client_frame(
        OP_CONT, b"b", rsv1=True
    )
    expect(FrameParser(deflate=Inflater(params, 100)), stream, 1002)


def test_rsv1_without_negotiation_is_1002() -> None:
    data = zlib.compress(b"x")
    expect(FrameParser(), encode_client_frame(OP_TEXT, data, rsv1=True), 1002)
