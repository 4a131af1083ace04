"""FrameParser and encoders: bytes in, events out (RFC 6455 5), no sockets."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from protocol import frames
from protocol.errors import FrameError
from protocol.frames import (
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

MASK = b"\x37\xfa\x21\x3d"


@pytest.fixture(scope="module", autouse=True, params=["speedups", "pure"])
def mask_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test with the C apply_mask and with the pure-Python twin."""
    saved = frames._c_apply_mask
    if request.param == "pure":
        frames._c_apply_mask = None
    elif saved is None:
        pytest.skip("websockets.speedups not available")
    try:
        yield request.param
    finally:
        frames._c_apply_mask = saved


def cf(opcode: int, payload: bytes = b"", **kw: object) -> bytes:
    return encode_client_frame(opcode, payload, mask=MASK, **kw)  # type: ignore[arg-type]


def raw_frame(
    b0: int, payload: bytes = b"", *, masked: bool = True, length: int | None = None
) -> bytes:
    """A hand-built frame, for headers the encoders refuse to produce."""
    n = len(payload) if length is None else length
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if masked:
        return head + MASK + mask_payload(MASK, payload)
    return head + payload


def expect_error(data: bytes, code: int, **kw: object) -> FrameError:
    parser = FrameParser(**kw)  # type: ignore[arg-type]
    with pytest.raises(FrameError) as info:
        parser.feed(data)
    assert info.value.close_code == code
    # A failed parser ignores whatever follows.
    assert parser.feed(cf(OP_TEXT, b"x")) == []
    assert parser.closed
    return info.value


# -- RFC 6455 5.7 examples -------------------------------------------------------


def test_rfc_examples_masked_and_unmasked() -> None:
    # RFC 6455 5.7: a single-frame masked text message containing "Hello".
    assert FrameParser().feed(bytes.fromhex("818537fa213d7f9f4d5158")) == [TextMessage("Hello")]
    # The unmasked version, as a client would receive it.
    client = FrameParser(require_mask=False)
    assert client.feed(bytes.fromhex("810548656c6c6f")) == [TextMessage("Hello")]
    # Fragmented unmasked text message "Hel" + "lo".
    assert client.feed(bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")) == [
        TextMessage("Hello")
    ]
    # Unmasked ping with "Hello", then the masked pong from the RFC.
    assert client.feed(bytes.fromhex("890548656c6c6f")) == [Ping(b"Hello")]
    server = FrameParser()
    assert server.feed(bytes.fromhex("8a8537fa213d7f9f4d5158")) == [Pong(b"Hello")]


def test_encoders_match_rfc_examples() -> None:
    assert encode_text("Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_client_frame(OP_TEXT, b"Hello", mask=MASK) == bytes.fromhex(
        "818537fa213d7f9f4d5158"
    )
    assert encode_ping(b"Hello") == bytes.fromhex("890548656c6c6f")
    assert encode_binary(b"\x00" * 256)[:4] == bytes.fromhex("827e0100")
    assert encode_binary(b"\x00" * 65536)[:10] == bytes.fromhex("827f0000000000010000")
    assert encode_pong(b"") == b"\x8a\x00"


# -- the fast path and basic messages -------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 32, 125, 126, 127, 65535, 65536, 70000])
def test_single_message_sizes(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    parser = FrameParser(max_message_size=1 << 20)
    assert parser.feed(cf(OP_BINARY, payload)) == [BinaryMessage(payload)]
    text = ("é" * size)[: size // 2]
    assert parser.feed(cf(OP_TEXT, text.encode())) == [TextMessage(text)]


def test_fast_path_falls_back_when_buffer_not_empty() -> None:
    parser = FrameParser()
    frame = cf(OP_TEXT, b"abc")
    assert parser.feed(frame[:1]) == []
    assert parser.feed(frame[1:]) == [TextMessage("abc")]
    assert parser.feed(frame + frame) == [TextMessage("abc"), TextMessage("abc")]


def test_message_types_are_frozen() -> None:
    msg = TextMessage("x")
    with pytest.raises(AttributeError):
        msg.data = "y"  # type: ignore[misc]


# -- fragmentation ------------------------------------------------------------------


def test_fragmented_text_with_interleaved_control_frames() -> None:
    stream = (
        cf(OP_TEXT, "hé".encode()[:2], fin=False)
        + cf(OP_PING, b"p1")
        + cf(OP_CONT, "hé".encode()[2:] + b" wor", fin=False)
        + cf(OP_PONG, b"p2")
        + cf(OP_CONT, b"ld", fin=True)
        + cf(OP_BINARY, b"\x00\x01")
    )
    assert FrameParser().feed(stream) == [
        Ping(b"p1"),
        Pong(b"p2"),
        TextMessage("hé world"),
        BinaryMessage(b"\x00\x01"),
    ]


def test_fragmented_binary_and_empty_fragments() -> None:
    stream = (
        cf(OP_BINARY, b"", fin=False)
        + cf(OP_CONT, b"ab", fin=False)
        + cf(OP_CONT, b"", fin=False)
        + cf(OP_CONT, b"c", fin=True)
    )
    assert FrameParser().feed(stream) == [BinaryMessage(b"abc")]


def test_every_split_point_gives_identical_events() -> None:
    stream = (
        cf(OP_TEXT, b"hello")
        + cf(OP_BINARY, b"x" * 300, fin=False)
        + cf(OP_PING, b"ping")
        + cf(OP_CONT, b"y" * 70000, fin=True)
        + cf(OP_TEXT, "ünï".encode(), fin=False)
        + cf(OP_CONT, "cödé".encode())
        + cf(OP_CLOSE, b"\x03\xe8bye")
        + cf(OP_TEXT, b"ignored after close")
    )
    expected = FrameParser(max_message_size=1 << 20).feed(stream)
    assert expected == [
        TextMessage("hello"),
        Ping(b"ping"),
        BinaryMessage(b"x" * 300 + b"y" * 70000),
        TextMessage("ünïcödé"),
        CloseFrame(1000, "bye"),
    ]
    step = 7  # every split near frame boundaries plus a stride through the payloads
    points = (
        set(range(0, 40))
        | set(range(0, len(stream), step))
        | set(range(len(stream) - 80, len(stream)))
    )
    for i in sorted(points):
        parser = FrameParser(max_message_size=1 << 20)
        assert parser.feed(stream[:i]) + parser.feed(stream[i:]) == expected, i


def test_byte_at_a_time() -> None:
    stream = (
        cf(OP_TEXT, "añb".encode(), fin=False)
        + cf(OP_PING, b"!")
        + cf(OP_CONT, b"c")
        + cf(OP_BINARY, b"z" * 200)
    )
    parser = FrameParser()
    events: list[Event] = []
    for i in range(len(stream)):
        events += parser.feed(stream[i : i + 1])
    assert events == [Ping(b"!"), TextMessage("añbc"), BinaryMessage(b"z" * 200)]


def test_large_frame_in_many_chunks_is_linear() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    frame = cf(OP_BINARY, payload)
    parser = FrameParser(max_message_size=len(payload))
    out: list[Event] = []
    for i in range(0, len(frame), 1000):
        out += parser.feed(frame[i : i + 1000])
    assert out == [BinaryMessage(payload)]


# -- 1002 protocol errors -------------------------------------------------------------


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x60])
def test_rsv_bits_without_extension(rsv: int) -> None:
    expect_error(raw_frame(0x80 | rsv | OP_TEXT, b"x"), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcode(opcode: int) -> None:
    expect_error(raw_frame(0x80 | opcode, b""), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame(opcode: int) -> None:
    expect_error(raw_frame(opcode, b""), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_payload_too_long(opcode: int) -> None:
    payload = b"\x03\xe8" + b"a" * 124
    expect_error(raw_frame(0x80 | opcode, payload), 1002)
    # Also via a 16-bit length field holding a small value.
    expect_error(raw_frame(0x80 | opcode, b"", length=126)[:4], 1002)


def test_control_payload_of_125_is_fine() -> None:
    assert FrameParser().feed(cf(OP_PING, b"a" * 125)) == [Ping(b"a" * 125)]


def test_continuation_without_start() -> None:
    expect_error(cf(OP_CONT, b"x"), 1002)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_new_data_frame_while_fragmented(opcode: int) -> None:
    expect_error(cf(OP_TEXT, b"a", fin=False) + cf(opcode, b"b"), 1002)


def test_unmasked_frame_to_server() -> None:
    expect_error(raw_frame(0x81, b"hi", masked=False), 1002)


def test_masked_frame_to_client() -> None:
    expect_error(cf(OP_TEXT, b"hi"), 1002, require_mask=False)


def test_non_minimal_lengths_are_accepted() -> None:
    payload = b"abc"
    head16 = struct.pack("!BBH", 0x82, 0x80 | 126, 3)
    head64 = struct.pack("!BBQ", 0x82, 0x80 | 127, 3)
    body = MASK + mask_payload(MASK, payload)
    assert FrameParser().feed(head16 + body + head64 + body) == [BinaryMessage(payload)] * 2


def test_64bit_length_high_bit() -> None:
    head = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63)
    expect_error(head, 1002, max_message_size=1 << 62)


def test_error_detected_from_first_two_bytes() -> None:
    # The parser does not wait for the payload to refuse a bad header.
    expect_error(bytes((0x83, 0x80 | 100)), 1002)


# -- close frames ------------------------------------------------------------------------


def test_close_empty_body_is_1005() -> None:
    assert FrameParser().feed(cf(OP_CLOSE)) == [CloseFrame(1005, "")]


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_close_valid_codes(code: int) -> None:
    assert FrameParser().feed(cf(OP_CLOSE, struct.pack("!H", code) + "bÿe".encode())) == [
        CloseFrame(code, "bÿe")
    ]


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_close_code_without_reason(code: int) -> None:
    # Both paths (a lone frame, and one behind a message), twice: the event of a bare
    # code is shared once made, and must stay that code with no reason.
    frame = cf(OP_CLOSE, struct.pack("!H", code))
    for _ in range(2):
        assert FrameParser().feed(frame) == [CloseFrame(code, "")]
        assert FrameParser().feed(cf(OP_TEXT, b"x") + frame) == [
            TextMessage("x"),
            CloseFrame(code, ""),
        ]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_invalid_codes(code: int) -> None:
    expect_error(cf(OP_CLOSE, struct.pack("!H", code)), 1002)


def test_close_length_one() -> None:
    expect_error(cf(OP_CLOSE, b"\x03"), 1002)


def test_close_bad_utf8_reason() -> None:
    expect_error(cf(OP_CLOSE, b"\x03\xe8\xff"), 1007)


def test_input_after_close_is_ignored() -> None:
    parser = FrameParser()
    events = parser.feed(
        cf(OP_PING) + cf(OP_CLOSE, b"\x03\xe8") + cf(OP_TEXT, b"late") + b"\xff\xff"
    )
    assert events == [Ping(b""), CloseFrame(1000, "")]
    assert parser.closed
    assert parser.feed(cf(OP_TEXT, b"later")) == []


# -- 1007 invalid UTF-8 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x80b", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
)
def test_invalid_utf8_text(bad: bytes) -> None:
    expect_error(cf(OP_TEXT, bad), 1007)
    # Through the buffered path as well.
    expect_error(cf(OP_PING) + cf(OP_TEXT, bad), 1007)


def test_invalid_utf8_fails_fast_on_first_fragment() -> None:
    parser = FrameParser()
    with pytest.raises(FrameError) as info:
        parser.feed(cf(OP_TEXT, b"ok\xff", fin=False))
    assert info.value.close_code == 1007


def test_utf8_sequence_split_across_fragments_is_fine() -> None:
    data = "€".encode()
    stream = (
        cf(OP_TEXT, data[:1], fin=False) + cf(OP_CONT, data[1:2], fin=False) + cf(OP_CONT, data[2:])
    )
    assert FrameParser().feed(stream) == [TextMessage("€")]


def test_truncated_utf8_at_end_of_fragmented_message() -> None:
    expect_error(cf(OP_TEXT, b"a", fin=False) + cf(OP_CONT, b"\xe2\x82"), 1007)


# -- 1009 too big ------------------------------------------------------------------------------


def test_single_frame_too_big() -> None:
    expect_error(cf(OP_BINARY, b"x" * 101), 1009, max_message_size=100)
    expect_error(cf(OP_TEXT, b"x" * 101)[:20], 1009, max_message_size=100)


def test_fragments_sum_too_big() -> None:
    stream = cf(OP_BINARY, b"x" * 60, fin=False) + cf(OP_CONT, b"x" * 41)
    expect_error(stream, 1009, max_message_size=100)
    ok = cf(OP_BINARY, b"x" * 60, fin=False) + cf(OP_CONT, b"x" * 40)
    assert FrameParser(max_message_size=100).feed(ok) == [BinaryMessage(b"x" * 100)]


def test_huge_declared_length_never_allocates() -> None:
    head = struct.pack("!BBQ", 0x82, 0x80 | 127, 2 * 1024**3) + MASK
    parser = FrameParser()
    tracemalloc.start()
    try:
        with pytest.raises(FrameError) as info:
            parser.feed(head + b"\x00" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.close_code == 1009
    assert peak < 1024 * 1024


# -- encoders ------------------------------------------------------------------------------------


def test_encode_close() -> None:
    assert encode_close() == b"\x88\x02\x03\xe8"
    assert encode_close(1005) == b"\x88\x00"
    assert encode_close(1006, "local only") == b"\x88\x00"
    assert encode_close(1015) == b"\x88\x00"
    assert encode_close(4401, "auth") == b"\x88\x06\x11\x31auth"
    frame = encode_close(1000, "é" * 100)  # 200 bytes: cut on a code point boundary
    assert len(frame) - 2 <= 125
    parsed = FrameParser(require_mask=False).feed(frame)
    assert parsed == [CloseFrame(1000, "é" * 61)]


def test_encode_frame_rejects_invalid_control_frames() -> None:
    with pytest.raises(ValueError):
        encode_frame(OP_PING, b"x" * 126)
    with pytest.raises(ValueError):
        encode_frame(OP_CLOSE, b"", fin=False)
    with pytest.raises(ValueError):
        encode_frame(3, b"")


def test_encode_frame_bits() -> None:
    assert encode_frame(OP_TEXT, b"a", fin=False) == b"\x01\x01a"
    assert encode_frame(OP_BINARY, b"a", rsv1=True) == b"\xc2\x01a"
    assert encode_frame(OP_CONT, b"") == b"\x80\x00"


def test_mask_payload_is_an_involution() -> None:
    data = bytes(range(256)) * 3 + b"xyz"
    assert mask_payload(MASK, mask_payload(MASK, data)) == data
    assert mask_payload(MASK, b"") == b""
    assert mask_payload(b"\x00\x00\x00\x00", data) == data
    assert mask_payload(b"\xff\x00\xff\x00", b"\x0f\x0f\x0f") == b"\xf0\x0f\xf0"
    with pytest.raises(ValueError):
        mask_payload(b"abc", b"x")


def test_random_mask_by_default() -> None:
    assert encode_client_frame(OP_TEXT, b"x" * 50) != encode_client_frame(OP_TEXT, b"x" * 50)


# -- property tests ----------------------------------------------------------------------------

messages = st.one_of(
    st.tuples(st.just(OP_TEXT), st.text(max_size=400)),
    st.tuples(st.just(OP_BINARY), st.binary(max_size=400)),
)


@st.composite
def message_streams(draw: st.DrawFn) -> tuple[list[bytes], list[Event]]:
    """Random messages, randomly fragmented, with control frames in between."""
    frames: list[bytes] = []
    expected: list[Event] = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            ping = draw(st.binary(max_size=125))
            frames.append(encode_client_frame(OP_PING, ping))
            expected.append(Ping(ping))
        opcode, data = draw(messages)
        raw = data.encode() if isinstance(data, str) else data
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        controls: list[Event] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            frames.append(encode_client_frame(opcode if i == 0 else OP_CONT, piece, fin=last))
            if not last and draw(st.booleans()):
                pong = draw(st.binary(max_size=20))
                frames.append(encode_client_frame(OP_PONG, pong))
                controls.append(Pong(pong))
        expected += controls
        expected.append(TextMessage(data) if isinstance(data, str) else BinaryMessage(data))
    return frames, expected


@settings(max_examples=300, deadline=None)
@given(message_streams(), st.data())
def test_roundtrip_random_streams_and_chunking(
    stream: tuple[list[bytes], list[Event]], data: st.DataObject
) -> None:
    frames, expected = stream
    wire = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    parser = FrameParser()
    events: list[Event] = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        events += parser.feed(wire[a:b])
    assert events == expected


def wsproto_messages(proto: FrameProtocol, data: bytes) -> list[tuple[str, object]]:
    """Reassemble wsproto frames into (kind, payload) messages."""
    proto.receive_bytes(data)
    out: list[tuple[str, object]] = []
    acc: list[Any] = []
    for frame in proto.received_frames():
        payload: Any = frame.payload
        if frame.opcode in (Opcode.PING, Opcode.PONG):
            out.append((frame.opcode.name, bytes(payload)))
        elif frame.opcode is Opcode.CLOSE:
            code, reason = payload
            out.append(("CLOSE", (int(code), reason)))
        else:
            acc.append(payload)
            if frame.message_finished:
                if isinstance(acc[0], str):
                    out.append(("TEXT", "".join(acc)))
                else:
                    out.append(("BINARY", b"".join(bytes(p) for p in acc)))
                acc = []
    return out


def as_tuples(events: list[Event]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for e in events:
        if isinstance(e, TextMessage):
            out.append(("TEXT", e.data))
        elif isinstance(e, BinaryMessage):
            out.append(("BINARY", e.data))
        elif isinstance(e, Ping):
            out.append(("PING", e.payload))
        elif isinstance(e, Pong):
            out.append(("PONG", e.payload))
        else:
            out.append(("CLOSE", (e.code, e.reason)))
    return out


close_codes = st.sampled_from([1000, 1001, 1008, 1011, 3000, 4401, 4999])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(messages, st.integers(0, 3)), min_size=1, max_size=5),
    st.binary(max_size=50),
    close_codes,
    st.text(max_size=40),
)
def test_wsproto_client_frames_parse_identically(
    msgs: list[tuple[tuple[int, object], int]], ping: bytes, code: int, reason: str
) -> None:
    client = FrameProtocol(client=True, extensions=[])
    wire = bytearray()
    expected: list[tuple[str, object]] = []
    for (opcode, data), nfrag in msgs:
        # wsproto decides the opcode from the payload type; split into nfrag+1 frames.
        assert opcode in (OP_TEXT, OP_BINARY)
        if isinstance(data, str):
            step = max(1, len(data) // (nfrag + 1))
            parts: list[object] = [data[i : i + step] for i in range(0, len(data), step)] or [""]
            expected.append(("TEXT", data))
        else:
            assert isinstance(data, bytes)
            step = max(1, len(data) // (nfrag + 1))
            parts = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
            expected.append(("BINARY", data))
        for i, part in enumerate(parts):
            wire += client.send_data(part, fin=i == len(parts) - 1)  # type: ignore[arg-type]
        wire += client.ping(ping)
        expected.append(("PING", ping))
    wire += client.close(code, reason)
    expected.append(("CLOSE", (code, reason.encode()[:123].decode("utf-8", "ignore"))))
    assert as_tuples(FrameParser().feed(bytes(wire))) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(messages, st.tuples(st.just(OP_PING), st.binary(max_size=125))),
        min_size=1,
        max_size=6,
    ),
    close_codes,
    st.text(max_size=200),
)
def test_our_encoders_parse_in_wsproto_client(
    msgs: list[tuple[int, object]], code: int, reason: str
) -> None:
    wire = bytearray()
    expected: list[tuple[str, object]] = []
    for opcode, data in msgs:
        if opcode == OP_TEXT:
            assert isinstance(data, str)
            wire += encode_text(data)
            expected.append(("TEXT", data))
        elif opcode == OP_BINARY:
            assert isinstance(data, bytes)
            wire += encode_binary(data)
            expected.append(("BINARY", data))
        else:
            assert isinstance(data, bytes)
            wire += encode_ping(data) + encode_pong(data)
            expected += [("PING", data), ("PONG", data)]
    wire += encode_close(code, reason)
    expected.append(("CLOSE", (code, reason.encode()[:123].decode("utf-8", "ignore"))))
    client = FrameProtocol(client=True, extensions=[])
    assert wsproto_messages(client, bytes(wire)) == expected
    # And our own client-side parser agrees.
    assert as_tuples(FrameParser(require_mask=False).feed(bytes(wire))) == expected


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 1023, 1024, 1025, 1026, 1027, 4099])
def test_pure_python_mask_twins_agree(size: int) -> None:
    """The int-XOR, strided-translate and C implementations give the same bytes."""
    data = bytes(range(251)) * (size // 251 + 1)
    data = data[:size]
    expected = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    saved = frames._c_apply_mask
    try:
        for impl in {saved, None}:
            frames._c_apply_mask = impl
            assert mask_payload(MASK, data) == expected
            buf = b"xx" + MASK + data + b"yy"
            assert bytes(frames._unmask(buf, 6, 6 + size)) == expected
    finally:
        frames._c_apply_mask = saved


def test_empty_fragment_flood_does_not_accumulate() -> None:
    parser = FrameParser()
    parser.feed(cf(OP_BINARY, b"a", fin=False))
    empty = cf(OP_CONT, b"", fin=False)
    for _ in range(100):
        assert parser.feed(empty * 100) == []
    assert len(parser._frag_parts) == 1
    assert parser.feed(cf(OP_CONT, b"b")) == [BinaryMessage(b"ab")]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_only_raises_frame_error(data: bytes, require_mask: bool) -> None:
    parser = FrameParser(require_mask=require_mask, max_message_size=1000)
    try:
        for i in range(0, len(data), 7):
            parser.feed(data[i : i + 7])
    except FrameError as exc:
        assert exc.close_code in (1002, 1007, 1009)


def test_idle_parsers_share_no_mutable_state() -> None:
    """Idle parsers use shared empty placeholders; fragments never leak into them."""
    from protocol import frames

    a, b = FrameParser(), FrameParser()
    first = encode_client_frame(OP_TEXT, b"he", fin=False)
    rest = encode_client_frame(OP_CONT, b"llo")
    assert a.feed(first) == []
    assert b.feed(encode_client_frame(OP_TEXT, b"other")) == [TextMessage("other")]
    assert a.feed(rest) == [TextMessage("hello")]
    assert frames._NO_PARTS == []
    # A frame split across reads gets its own buffer, freed once consumed.
    frame = encode_client_frame(OP_BINARY, b"x" * 300)
    assert a.feed(frame[:10]) == []
    assert a.feed(frame[10:]) == [BinaryMessage(b"x" * 300)]
    assert a._buf == b"" and frames._EMPTY == b""


def test_feed_message_is_the_single_frame_fast_path() -> None:
    parser = FrameParser(max_message_size=1000)
    assert parser.feed_message(encode_client_frame(OP_TEXT, b"hi")) == "hi"
    assert parser.feed_message(encode_client_frame(OP_BINARY, b"\x00" * 300)) == b"\x00" * 300
    assert parser.feed_message(encode_client_frame(OP_TEXT, b"")) == ""
    # Anything else is left to feed(), untouched.
    two = encode_client_frame(OP_TEXT, b"a") + encode_client_frame(OP_TEXT, b"b")
    assert parser.feed_message(two) is None
    assert parser.feed(two) == [TextMessage("a"), TextMessage("b")]
    assert parser.feed_message(encode_client_frame(OP_PING, b"p")) is None
    assert parser.feed_message(encode_client_frame(OP_TEXT, b"x", fin=False)) is None
    assert parser.feed_message(encode_client_frame(OP_TEXT, b"y" * 1001)) is None
    frame = encode_client_frame(OP_TEXT, b"split")
    assert parser.feed_message(frame[:3]) is None
    assert parser.feed(frame[:3]) == []
    assert parser.feed_message(frame[3:]) is None  # something is buffered
    assert parser.feed(frame[3:]) == [TextMessage("split")]
    with pytest.raises(FrameError) as info:
        parser.feed_message(encode_client_frame(OP_TEXT, b"\xff"))
    assert info.value.close_code == 1007
    assert parser.closed


@given(st.binary(max_size=300), st.booleans())
def test_feed_message_agrees_with_feed(payload: bytes, text: bool) -> None:
    if text:
        payload = payload.decode("utf-8", "replace").encode("utf-8")
    frame = encode_client_frame(OP_TEXT if text else OP_BINARY, payload)
    fast = FrameParser(max_message_size=1 << 16).feed_message(frame)
    (event,) = FrameParser(max_message_size=1 << 16).feed(frame)
    assert fast == event.data


# -- 1007 fail fast inside one frame (RFC 6455 8.1, Autobahn 6.4.3 / 6.4.4) -------------------


def _feed_chops(parser: FrameParser, chops: list[bytes]) -> int:
    """Feed ``chops`` one by one; return the index of the chop that raised 1007."""
    for i, chop in enumerate(chops):
        try:
            parser.feed(chop)
        except FrameError as exc:
            assert exc.close_code == 1007
            return i
    raise AssertionError("no 1007")


@pytest.mark.parametrize("split", [2, 6, 7, 9, 10])
def test_invalid_utf8_inside_one_frame_fails_at_the_bad_chop(split: int) -> None:
    # Autobahn 6.4.3: valid text, then the invalid bytes, then the rest of the same frame.
    good = "κόσμε".encode()
    payload = good + b"\xf4\x90\x80\x80" + b"edited"
    frame = cf(OP_TEXT, payload)
    # \xf4 may start a code point; \xf4\x90 is beyond U+10FFFF: the second byte is bad.
    bad_at = 6 + len(good) + 1
    chops = [frame[:split], frame[split : bad_at + 1], frame[bad_at + 1 :]]
    assert _feed_chops(FrameParser(), chops) == 1


def test_invalid_utf8_inside_one_frame_byte_by_byte() -> None:
    payload = b"hello" + b"\xed\xa0\x80" + b"x" * 300  # a surrogate: invalid in UTF-8
    frame = cf(OP_TEXT, payload)
    chops = [frame[i : i + 1] for i in range(len(frame))]
    # 16-bit length: 8 header bytes; the decoder refuses at the second byte of \xed\xa0.
    assert _feed_chops(FrameParser(), chops) == 8 + 5 + 1


def test_invalid_utf8_inside_a_continuation_frame_fails_fast() -> None:
    # The first fragment ends inside a code point; the continuation frame breaks it.
    first = cf(OP_TEXT, b"ok\xe2\x82", fin=False)
    cont = cf(OP_CONT, b"(" + b"x" * 200)  # \xe2\x82 must be followed by a continuation byte
    chops = [first + cont[:8], cont[8:9], cont[9:]]
    assert _feed_chops(FrameParser(), chops) == 1


def test_valid_utf8_split_anywhere_inside_one_frame_is_fine() -> None:
    text = "aé€😀" * 50
    frame = cf(OP_TEXT, text.encode())
    for size in (1, 2, 3, 5, 7, 64):
        parser = FrameParser()
        events: list[Event] = []
        for i in range(0, len(frame), size):
            events += parser.feed(frame[i : i + size])
        assert events == [TextMessage(text)], size
    # Split code points across fragments and across chops of each fragment.
    raw = text.encode()
    stream = cf(OP_TEXT, raw[:101], fin=False) + cf(OP_CONT, raw[101:])
    parser = FrameParser()
    events = []
    for i in range(0, len(stream), 3):
        events += parser.feed(stream[i : i + 3])
    assert events == [TextMessage(text)]


def test_partial_binary_and_compressed_frames_are_not_utf8_checked() -> None:
    parser = FrameParser()
    frame = cf(OP_BINARY, b"\xff" * 50)
    assert parser.feed(frame[:20]) == []
    assert parser.feed(frame[20:]) == [BinaryMessage(b"\xff" * 50)]


def test_surrogate_prefix_across_fragments_fails_fast() -> None:
    # ED A0 can only start a UTF-16 surrogate: refused before the third byte arrives.
    parser = FrameParser()
    assert parser.feed(cf(OP_TEXT, b"a\xed", fin=False)) == []
    with pytest.raises(FrameError) as info:
        parser.feed(cf(OP_CONT, b"\xa0", fin=False))
    assert info.value.close_code == 1007
    # ED 9F is the start of U+D7C0..U+D7FF: valid, kept for the next byte.
    parser = FrameParser()
    assert parser.feed(cf(OP_TEXT, b"a\xed\x9f", fin=False)) == []
    assert parser.feed(cf(OP_CONT, b"\xbf")) == [TextMessage("a\ud7ff")]


def test_client_side_parser_checks_unmasked_partial_text() -> None:
    frame = encode_text("fine " * 40)[:-1] + b"\xff"  # last byte replaced by an invalid one
    parser = FrameParser(require_mask=False)
    assert parser.feed(frame[:100]) == []
    with pytest.raises(FrameError) as info:
        parser.feed(frame[100:])
    assert info.value.close_code == 1007
    parser = FrameParser(require_mask=False, max_message_size=1 << 20)
    good = encode_frame(OP_TEXT, ("é" * 70_000).encode())  # 64-bit length
    events: list[Event] = []
    for i in range(0, len(good), 4099):
        events += parser.feed(good[i : i + 4099])
    assert events == [TextMessage("é" * 70_000)]
