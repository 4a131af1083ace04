"""protocol/speedups.c: the C scan of a request head against the Python path.

The C function answers only heads the Python path accepts, with what it returns; for
anything else it returns None and parse_request runs the Python path. These tests
check that contract on hand-picked shapes and on ~20,000 seeded mutations of real
upgrade requests (the ``handshake_diff`` fuzz target runs the same property under
atheris), and that the fast path is really the one an ordinary upgrade takes.
"""

from __future__ import annotations

import random

import pytest

from protocol import handshake
from protocol.errors import HandshakeError
from tests.fuzz.fuzz_handshake_diff import check
from tests.fuzz.seeds import UPGRADE, handshake_diff
from tests.hotpath import forced_pure

speedups = pytest.importorskip("protocol.speedups", reason="built without a compiler")
parse_head = speedups.parse_head

BROWSER = (
    b"GET /app/key?protocol=7&client=js HTTP/1.1\r\nHost: localhost:6001\r\n"
    b"Connection: Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0\r\nUpgrade: websocket\r\n"
    b"Origin: http://localhost:8000\r\nSec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
    b"Cookie: a=b; XSRF-TOKEN=eyJpdiI6\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)


def both(head: bytes, max_headers: int = 64) -> tuple[object, object]:
    end = head.index(b"\r\n\r\n")
    try:
        expected: object = handshake._parse_head_py(head, 0, end, max_headers)
    except HandshakeError as exc:
        expected = exc.status
    return parse_head(head, 0, end + 2, max_headers), expected


@pytest.mark.parametrize(
    "head", [UPGRADE + b"\r\n", BROWSER, b"GET / HTTP/1.0\r\n\r\n", b"OPTIONS * HTTP/1.1\r\n\r\n"]
)
def test_the_common_heads_take_the_c_path_with_the_python_answer(head: bytes) -> None:
    fast, expected = both(head)
    assert fast is not None
    assert fast == expected
    assert list(fast[3].items()) == list(expected[3].items())  # type: ignore[index]


def test_names_lowered_values_stripped_latin1_decoded() -> None:
    fast, expected = both(b"GET /\xe9?q HTTP/1.1\r\nX-Odd-NAME: \t a\xff b \t\r\nEmpty:\r\n\r\n")
    assert fast == ("GET", "/\xe9?q", "HTTP/1.1", {"x-odd-name": "a\xff b", "empty": ""})
    assert fast == expected


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\nA: 1\rB: 2\r\n\r\n", 400),  # bare CR
        (b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n", 400),  # bare LF
        (b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n", 400),  # a control in a value
        (b"GET / HTTP/1.1\r\nA : 1\r\n\r\n", 400),  # space before the colon
        (b"GET / HTTP/1.1\r\n: 1\r\n\r\n", 400),  # no name
        (b"GET / HTTP/1.1\r\nA 1\r\n\r\n", 400),  # no colon
        (b"GET / HTTP/1.1\r\nA: 1\r\n 2\r\n\r\n", 400),  # obs-fold
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_refusals_are_left_to_the_python_path(head: bytes, status: int) -> None:
    assert both(head) == (None, status)
    with pytest.raises(HandshakeError) as err:
        handshake.parse_request(head)
    assert err.value.status == status


def test_repeats_and_too_many_headers_are_left_to_the_python_path() -> None:
    fast, expected = both(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n")
    assert fast is None
    assert expected == ("GET", "/", "HTTP/1.1", {"a": "1, 3", "b": "2"})
    head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    assert both(head, max_headers=3)[0] is not None
    assert both(head, max_headers=2) == (None, 431)


def test_region_bounds_and_buffer_types() -> None:
    head = b"\r\n" + UPGRADE + b"\r\nbody"
    end = head.index(b"\r\n\r\n", 2)
    for buf in (head, bytearray(head), memoryview(head)):
        assert parse_head(buf, 2, end + 2, 64) == handshake._parse_head_py(head, 2, end, 64)
    assert parse_head(head, 2, len(head) + 1, 64) is None  # past the end: no read
    assert parse_head(head, 10, 5, 64) is None
    assert parse_head(head, -1, 5, 64) is None
    with pytest.raises(TypeError):
        parse_head("text", 0, 1, 64)
    with pytest.raises(TypeError):
        parse_head(head, 0, 1)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    alphabet = b"\r\n\t :\x00\x7f\x80\xffaZ-/?1"
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out) + 1)
        op = rng.random()
        if op < 0.4 and i < len(out):
            out[i] = rng.choice(alphabet)
        elif op < 0.7:
            out[i:i] = bytes([rng.choice(alphabet)])
        elif i < len(out):
            del out[i : i + rng.randint(1, 3)]
    return bytes(out)


def test_seeded_mutations_agree() -> None:
    rng = random.Random(1130)
    seeds = [*handshake_diff().values(), BROWSER]
    fast = 0
    for _ in range(20_000):
        data = _mutate(rng, rng.choice(seeds))
        check(data)  # asserts: the C answer is None or the Python answer
        end = data.find(b"\r\n\r\n")
        if end > 0 and parse_head(data, 0, end + 2, 64) is not None:
            fast += 1
    # The property was checked on accepted heads, not only on refusals.
    assert fast > 2_000, fast


def test_parse_request_uses_the_c_scan_exactly_when_compiled() -> None:
    from gateway.connection import HOT_PATH

    assert handshake.USES_SPEEDUPS is (not forced_pure())
    assert (HOT_PATH == "compiled") is handshake.USES_SPEEDUPS
