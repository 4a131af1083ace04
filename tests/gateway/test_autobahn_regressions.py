"""Regressions found with the Autobahn|Testsuite, pinned without kosoku.

3.2-3.4, 4.1.3-4.1.5, 4.2.3-4.2.5, 5.15: a valid message and a protocol violation that
arrive in the same TCP segment. The message came first and was valid, so it is echoed
before the connection fails with 1002 (Autobahn says OK; dropping it is NON-STRICT).
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.verifiers import load_verifier
from protocol.errors import FrameError
from protocol.frames import (
    OP_CONT,
    OP_PING,
    OP_TEXT,
    CloseFrame,
    FrameParser,
    Ping,
    TextMessage,
    encode_client_frame,
)
from tests.gwtest import running_gateway, upgrade_request

HELLO = encode_client_frame(OP_TEXT, b"Hello, world!")
# 3.2: RSV2 set without an extension (RFC 6455 5.2).
BAD_RSV = bytes([HELLO[0] | 0x20]) + HELLO[1:]
# 4.1.3: reserved non-control opcode 3 (RFC 6455 5.2).
BAD_OPCODE = encode_client_frame(3, b"")
# 5.15: a continuation with nothing to continue (RFC 6455 5.4).
STRAY_CONT = encode_client_frame(OP_CONT, b"fragment3", fin=False)


@pytest.mark.parametrize("bad", [BAD_RSV, BAD_OPCODE, STRAY_CONT], ids=["rsv", "opcode", "cont"])
def test_parser_hands_back_messages_before_the_violation(bad: bytes) -> None:
    parser = FrameParser()
    data = HELLO + encode_client_frame(OP_PING, b"p") + bad + HELLO
    with pytest.raises(FrameError) as info:
        parser.feed(data)
    assert info.value.close_code == 1002
    assert list(info.value.events) == [TextMessage("Hello, world!"), Ping(b"p")]
    assert parser.closed and parser.feed(HELLO) == []


def test_parser_error_alone_carries_no_events() -> None:
    with pytest.raises(FrameError) as info:
        FrameParser().feed(BAD_OPCODE)
    assert info.value.events == ()


def test_fragmented_message_then_stray_continuation() -> None:
    # Autobahn 5.15 in one segment: fragment1 + fragment2 (FIN), then a stray continuation.
    first = encode_client_frame(OP_TEXT, b"fragment1", fin=False)
    second = encode_client_frame(OP_CONT, b"fragment2")
    with pytest.raises(FrameError) as info:
        FrameParser().feed(first + second + STRAY_CONT)
    assert list(info.value.events) == [TextMessage("fragment1fragment2")]


@pytest.mark.parametrize("bad", [BAD_RSV, BAD_OPCODE], ids=["rsv", "opcode"])
def test_gateway_echoes_then_fails_with_1002(arun, bad: bytes) -> None:
    async def main() -> None:
        async with running_gateway(verifier=load_verifier("none", {})) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            try:
                writer.write(upgrade_request())
                await reader.readuntil(b"\r\n\r\n")
                writer.write(HELLO + bad)  # one segment
                received = b""
                async with asyncio.timeout(5):
                    while chunk := await reader.read(65536):
                        received += chunk
                echo, close = FrameParser(require_mask=False).feed(received)
                assert echo == TextMessage("Hello, world!")
                assert isinstance(close, CloseFrame) and close.code == 1002
            finally:
                writer.close()

    arun(main())
