"""Micro benchmark: uvgate's hand-rolled protocol core against wsproto, same run.

    .venv/bin/python -m bench.micro_protocol [--repeat 5] [--number N]

Each case reports the best of ``--repeat`` timeit runs in microseconds per
operation (min is the least noisy estimate of the CPU cost). Pure CPU: no
sockets, no event loop. The numbers feed the budget of <= 75 us of server CPU
per connection (handshake + auth + close) and <= 5 us per small echoed message.
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable

import wsproto
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
)
from wsproto.events import (
    Request as WsRequest,
)
from wsproto.events import (
    TextMessage as WsTextMessage,
)
from wsproto.frame_protocol import FrameProtocol

from protocol import frames
from protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    FrameParser,
    TextMessage,
    encode_client_frame,
    encode_close,
    encode_text,
)
from protocol.handshake import accept_response, check_upgrade, parse_request

# A typical browser-ish upgrade request of about 200 bytes.
REQUEST = (
    b"GET /app/app-key?protocol=7&client=js&version=8.4.0 HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
MASK = b"\x37\xfa\x21\x3d"
TEXT32 = '{"event":"ping","data":{"n":12}}'  # 32 bytes
assert len(TEXT32) == 32
FRAME32 = encode_client_frame(OP_TEXT, TEXT32.encode(), mask=MASK)
AUTH = '{"event":"auth","data":{"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln"}}'
AUTH_FRAME = encode_client_frame(OP_TEXT, AUTH.encode(), mask=MASK)
CLOSE_FRAME = encode_client_frame(OP_CLOSE, b"\x03\xe8", mask=MASK)
FRAME_1K = encode_client_frame(OP_BINARY, bytes(range(256)) * 4, mask=MASK)
FRAME_64K = encode_client_frame(OP_TEXT, b"x" * 65536, mask=MASK)


# -- ours ------------------------------------------------------------------------


def ours_handshake() -> bytes:
    result = parse_request(REQUEST)
    assert result is not None
    return accept_response(check_upgrade(result[0]))


_parser = FrameParser()


def ours_parse32() -> object:
    return _parser.feed(FRAME32)


_big_parser = FrameParser(max_message_size=1 << 20)


def ours_parse1k() -> object:
    return _big_parser.feed(FRAME_1K)


def ours_parse64k() -> object:
    return _big_parser.feed(FRAME_64K)


def ours_encode() -> bytes:
    return encode_text(TEXT32)


def ours_echo() -> bytes:
    (msg,) = _parser.feed(FRAME32)
    assert isinstance(msg, TextMessage)
    return encode_text(msg.data)


def ours_connection() -> list[bytes]:
    """Handshake, one auth message in, one reply out, client close, close reply."""
    out = []
    result = parse_request(REQUEST)
    assert result is not None
    out.append(accept_response(check_upgrade(result[0])))
    parser = FrameParser()
    for ev in parser.feed(AUTH_FRAME):
        assert isinstance(ev, TextMessage)
        out.append(encode_text(ev.data))
    for _ev in parser.feed(CLOSE_FRAME):
        out.append(encode_close(1000))
    return out


# -- wsproto -------------------------------------------------------------------------


def ws_handshake() -> bytes:
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    conn.receive_data(REQUEST)
    for ev in conn.events():
        if isinstance(ev, WsRequest):
            return conn.send(AcceptConnection())
    raise AssertionError("no request")


def _ws_open() -> wsproto.WSConnection:
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    conn.receive_data(REQUEST)
    for _ in conn.events():
        conn.send(AcceptConnection())
    return conn


_ws_conn = _ws_open()
_ws_frames = FrameProtocol(client=False, extensions=[])


def ws_parse32() -> object:
    _ws_conn.receive_data(FRAME32)
    return list(_ws_conn.events())


def ws_frames_parse32() -> object:
    _ws_frames.receive_bytes(FRAME32)
    return list(_ws_frames.received_frames())


_ws_big = FrameProtocol(client=False, extensions=[])


def ws_frames_parse1k() -> object:
    _ws_big.receive_bytes(FRAME_1K)
    return list(_ws_big.received_frames())


def ws_frames_parse64k() -> object:
    _ws_big.receive_bytes(FRAME_64K)
    return list(_ws_big.received_frames())


def ws_encode() -> bytes:
    return _ws_conn.send(Message(data=TEXT32))


def ws_echo() -> bytes:
    _ws_conn.receive_data(FRAME32)
    out = b""
    for ev in _ws_conn.events():
        assert isinstance(ev, WsTextMessage)
        out += _ws_conn.send(Message(data=ev.data))
    return out


def ws_connection() -> list[bytes]:
    out = []
    conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    conn.receive_data(REQUEST)
    for _ in conn.events():
        out.append(conn.send(AcceptConnection()))
    conn.receive_data(AUTH_FRAME)
    for ev in conn.events():
        assert isinstance(ev, WsTextMessage)
        out.append(conn.send(Message(data=ev.data)))
    conn.receive_data(CLOSE_FRAME)
    for ev in conn.events():
        if isinstance(ev, CloseConnection):
            out.append(conn.send(ev.response()))
    return out


CASES: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
    ("handshake: parse ~200 B upgrade + build 101", ours_handshake, ws_handshake),
    ("parse+unmask 32 B text frame (WSConnection)", ours_parse32, ws_parse32),
    ("parse+unmask 32 B text frame (FrameProtocol)", ours_parse32, ws_frames_parse32),
    ("parse+unmask 1 KiB binary frame (FrameProtocol)", ours_parse1k, ws_frames_parse1k),
    ("parse+unmask 64 KiB text frame (FrameProtocol)", ours_parse64k, ws_frames_parse64k),
    ("encode 32 B text frame", ours_encode, ws_encode),
    ("echo 32 B: parse + encode", ours_echo, ws_echo),
    ("connection: handshake+auth msg+reply+close", ours_connection, ws_connection),
]


def measure(fn: Callable[[], object], repeat: int, number: int | None) -> float:
    timer = timeit.Timer(fn)
    if number is None:
        number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--number", type=int, default=None, help="calls per run (default: timeit autorange)"
    )
    ap.add_argument(
        "--pure",
        action="store_true",
        help="disable the optional C apply_mask (websockets.speedups) to time the pure-Python twin",
    )
    args = ap.parse_args(argv)
    if args.pure:
        frames._c_apply_mask = None
    print(f"# uvgate masking: {'C apply_mask' if frames._c_apply_mask else 'pure Python'}")
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, {platform.processor() or platform.platform()}"
    )
    print(
        f"# wsproto {wsproto.__version__ if hasattr(wsproto, '__version__') else '?'}; best of {args.repeat}; us/op"
    )
    print(f"{'case':48} {'uvgate':>9} {'wsproto':>9} {'speedup':>8}")
    for name, ours, theirs in CASES:
        a = measure(ours, args.repeat, args.number)
        b = measure(theirs, args.repeat, args.number)
        print(f"{name:48} {a:9.2f} {b:9.2f} {b / a:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
