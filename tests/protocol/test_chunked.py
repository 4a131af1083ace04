"""protocol.chunked: the chunked request-body decoder (RFC 9112 7.1), bytes in only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.chunked import MAX_CHUNK_LINE, MAX_TRAILER_SIZE, MAX_TRAILERS, ChunkedDecoder
from protocol.errors import HandshakeError


def decode(data: bytes, *, max_body: int = 1 << 20, step: int = 0) -> tuple[bytes, bytes]:
    decoder = ChunkedDecoder(max_body=max_body)
    pieces = [data] if not step else [data[i : i + step] for i in range(0, len(data), step)]
    done = None
    for piece in pieces:
        done = decoder.feed(piece)  # after the end, pieces extend ``rest``
    assert done is not None and decoder.done, "incomplete"
    return done


def status(data: bytes, *, max_body: int = 1 << 20) -> int:
    decoder = ChunkedDecoder(max_body=max_body)
    with pytest.raises(HandshakeError) as info:
        assert decoder.feed(data) is None
        decoder.feed(b"")
    return info.value.status


def encode(chunks: list[bytes], ext: str = "", trailers: str = "") -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(c), ext.encode(), c) for c in chunks if c)
    return out + b"0" + ext.encode() + b"\r\n" + trailers.encode() + b"\r\n"


def test_rfc_example_and_rest() -> None:
    data = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET / HTTP/1.1\r\n"
    assert decode(data) == (b"Wikipedia in\r\n\r\nchunks.", b"GET / HTTP/1.1\r\n")


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_any_split_gives_the_same_body(step: int) -> None:
    data = encode([b"hello", b" ", b"world" * 30], ext=';a=1;b="x;y\\"z"', trailers="X-T: 1\r\n")
    assert decode(data + b"rest", step=step)[0] == b"hello world" + b"world" * 29


def test_hex_sizes_and_extensions() -> None:
    assert decode(b"A\r\n0123456789\r\n0\r\n\r\n")[0] == b"0123456789"
    assert decode(b"a\r\n0123456789\r\n0\r\n\r\n")[0] == b"0123456789"
    assert decode(b"000000000000000a\r\n0123456789\r\n0\r\n\r\n")[0] == b"0123456789"
    assert decode(b"1;name=value\r\nx\r\n0;last\r\n\r\n")[0] == b"x"
    assert decode(b'1;q="a\\"b"\r\nx\r\n0\r\n\r\n')[0] == b"x"


def test_trailers_are_skipped() -> None:
    data = b"1\r\nx\r\n0\r\nX-Checksum: abc\r\nX-Other:\r\n\r\n"
    assert decode(data) == (b"x", b"")


@pytest.mark.parametrize(
    "size_line",
    [
        b"+5",
        b"-5",
        b"0x5",
        b"5_0",
        b" 5",
        b"5 ",
        b"\t5",
        b"",
        b"g",
        "\u0665".encode(),  # Arabic-Indic five
        "\xb9".encode("latin-1"),  # superscript one
        "\uff15".encode(),  # fullwidth five
        b"1" * 17,  # more than 64 bits
        b"5;",
        b"5;=x",
        b"5;a=",
        b'5;a="unterminated',
        b"5;a=b c",
        b"5 ;a=b",  # BWS: senders must not generate it, h11 refuses it
        b"5; a=b",
        b"5;a =b",
        b"5\x00",
    ],
)
def test_strict_chunk_size_line(size_line: bytes) -> None:
    assert status(size_line + b"\r\nhello\r\n0\r\n\r\n") == 400


@pytest.mark.parametrize(
    "data",
    [
        b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
        b"5\r\nhello\n0\r\n\r\n",  # bare LF after the data
        b"5\r\nhelloXY0\r\n\r\n",  # data longer than declared
        b"5\r\nhello\r\n0\r\n\n",  # bare LF ends the trailers
        b"5\r\nhello\r\n0\r\n folded\r\n\r\n",  # obs-fold / no field name
        b"5\r\nhello\r\n0\r\nX T: 1\r\n\r\n",
        b"5\rX",  # a CR not followed by LF, refused before the line ends
        b"5\n",
    ],
)
def test_bare_lf_and_bad_framing_are_400(data: bytes) -> None:
    assert status(data) == 400


def test_body_bound_is_413_from_the_declared_size() -> None:
    # Refused as soon as the size line is in, before any of the data arrives.
    assert status(b"65\r\n", max_body=100) == 413
    assert status(b"32\r\n" + b"x" * 50 + b"\r\n33\r\n", max_body=100) == 413
    assert decode(b"64\r\n" + b"x" * 100 + b"\r\n0\r\n\r\n", max_body=100)[0] == b"x" * 100
    assert decode(b"0\r\n\r\n", max_body=0) == (b"", b"")


def test_line_bounds() -> None:
    long_ext = b"1;" + b"a" * MAX_CHUNK_LINE
    assert status(long_ext) == 400  # no CRLF within the bound: refused without waiting
    assert status(long_ext + b"\r\nx\r\n0\r\n\r\n") == 400
    ok_ext = b"1;" + b"a" * (MAX_CHUNK_LINE - 4)
    assert decode(ok_ext + b"\r\nx\r\n0\r\n\r\n")[0] == b"x"
    big_trailer = b"0\r\nX: " + b"v" * MAX_TRAILER_SIZE
    assert status(big_trailer) == 431
    many = b"0\r\n" + b"X: 1\r\n" * (MAX_TRAILERS + 1) + b"\r\n"
    assert status(many) == 431
    assert decode(b"0\r\n" + b"X: 1\r\n" * MAX_TRAILERS + b"\r\n") == (b"", b"")


def test_after_an_error_and_after_the_end() -> None:
    decoder = ChunkedDecoder(max_body=10)
    with pytest.raises(HandshakeError):
        decoder.feed(b"zz\r\n")
    with pytest.raises(HandshakeError):
        decoder.feed(b"0\r\n\r\n")
    decoder = ChunkedDecoder(max_body=10)
    assert decoder.feed(b"1\r\nx\r\n0\r\n\r\nGE") == (b"x", b"GE")
    assert decoder.feed(b"T /") == (b"x", b"GET /")
    assert decoder.body_size == 1
    with pytest.raises(ValueError):
        ChunkedDecoder(max_body=-1)


ext_token = st.text("abcXYZ019-!", min_size=1, max_size=5)
extension = st.one_of(
    st.just(""),
    st.builds(lambda n: f";{n}", ext_token),
    st.builds(lambda n, v: f";{n}={v}", ext_token, ext_token),
    st.builds(lambda n, v: f';{n}="{v}"', ext_token, st.text("ab ;,=", max_size=5)),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=6),
    extension,
    st.lists(st.tuples(ext_token, st.text("ab: \t", max_size=8)), max_size=3),
    st.integers(1, 9),
    st.binary(max_size=10),
)
def test_round_trip(
    chunks: list[bytes], ext: str, trailers: list[tuple[str, str]], step: int, rest: bytes
) -> None:
    trailer = "".join(f"{n}:{v}\r\n" for n, v in trailers)
    data = encode(chunks, ext, trailer) + rest
    assert decode(data, step=step) == (b"".join(chunks), rest)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 300))
def test_garbage_raises_only_handshake_errors(data: bytes, max_body: int) -> None:
    decoder = ChunkedDecoder(max_body=max_body)
    try:
        result = decoder.feed(data)
    except HandshakeError as exc:
        assert exc.status in (400, 413, 431)
        return
    if result is not None:
        assert len(result[0]) <= max_body
