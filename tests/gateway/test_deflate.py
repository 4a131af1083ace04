"""permessage-deflate end to end: a deflate connection's own sends are compressed (RFC 7692)."""

from __future__ import annotations

import asyncio
import os

from websockets.asyncio.client import connect

from gateway.verifiers import load_verifier
from protocol.deflate import DeflateParams, Inflater
from protocol.frames import OP_TEXT, FrameParser, TextMessage, encode_client_frame
from tests.gwtest import running_gateway, upgrade_request, url


def test_echo_over_deflate_with_context_takeover(arun):
    async def main():
        async with (
            running_gateway(
                verifier=load_verifier("none", {}), deflate=True, max_message_size=1 << 20
            ) as gw,
            connect(url(gw), compression="deflate", max_size=None) as ws,
        ):
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            # Repeats exercise the shared LZ77 window across messages (context takeover).
            messages: list[str | bytes] = ["hello " * 50, "hello " * 50, os.urandom(3000), "", b""]
            messages.append("x" * 200_000)
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message

    arun(main())


def test_replies_are_compressed_frames(arun):
    async def main():
        async with running_gateway(verifier=load_verifier("none", {}), deflate=True) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            try:
                writer.write(
                    upgrade_request(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
                )
                head = await reader.readuntil(b"\r\n\r\n")
                assert b"permessage-deflate" in head
                text = "compress me " * 40
                writer.write(encode_client_frame(OP_TEXT, text.encode()))
                first = await reader.readexactly(2)
                # RFC 7692 6.1: FIN + RSV1 + text; a repetitive payload shrinks.
                assert first[0] == 0xC1
                assert first[1] < 126
                body = await reader.readexactly(first[1])
                parser = FrameParser(require_mask=False, deflate=Inflater(DeflateParams(), 1 << 20))
                assert parser.feed(first + body) == [TextMessage(text)]
            finally:
                writer.close()

    arun(main())
