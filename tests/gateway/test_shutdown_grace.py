"""During the shutdown grace period the port still answers HTTP.

Seen before: the listener closed at once, so /ready was unreachable (a load balancer saw
"connection refused", not "not ready") and the Pusher HTTP API refused connections while
clients were still being drained.
"""

from __future__ import annotations

import asyncio
import json
import time

from gateway.tokens import issue_token
from protocol.frames import OP_TEXT, encode_client_frame
from protocol.pusher.apps import DEV_APP
from tests.gwtest import SECRET, raw_request, running_gateway, status_of, upgrade_request
from tests.pusher_api_helpers import call


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def test_http_answers_while_websockets_drain(arun):
    async def main():
        async with running_gateway(close_timeout=30.0) as gw:
            # A client that never answers the close frame keeps the gateway draining.
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            token = issue_token(SECRET, "slow")
            writer.write(
                encode_client_frame(OP_TEXT, json.dumps({"type": "auth", "token": token}).encode())
            )
            await reader.read(1024)  # auth_ok
            assert len(gw.registry) == 1
            port = gw.port
            started = time.monotonic()
            stopping = asyncio.create_task(gw.shutdown(grace=5.0))
            close_frame = await asyncio.wait_for(reader.read(1024), 2)
            assert close_frame[:1] == b"\x88" and close_frame[2:4] == (1001).to_bytes(2, "big")

            ready = await raw_request(gw, get("/ready"))
            assert status_of(ready) == 503 and b'"shutting down"' in ready
            assert b"connection: close" in ready.lower()
            assert status_of(await raw_request(gw, get("/up"))) == 200
            # No new WebSocket: go to another instance.
            refused = await raw_request(gw, upgrade_request())
            assert status_of(refused) == 503 and b"retry-after: 5" in refused.lower()
            refused = await raw_request(gw, upgrade_request(f"/app/{DEV_APP.key}?protocol=7"))
            assert status_of(refused) == 503
            # The Pusher HTTP API keeps publishing (with a cluster, to the other nodes).
            body = {"name": "flash", "channel": "news", "data": "{}"}
            answer = await call(gw.port, DEV_APP, "POST", f"/apps/{DEV_APP.id}/events", body)
            assert answer.status == 200
            answer = await call(gw.port, DEV_APP, "GET", f"/apps/{DEV_APP.id}/channels")
            assert answer.status == 200
            assert not stopping.done()  # still draining the slow client

            # Once the last WebSocket is gone the shutdown ends, well before the grace.
            writer.close()
            await asyncio.wait_for(stopping, 3)
            assert time.monotonic() - started < 4.5
            try:
                await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                pass
            else:
                raise AssertionError("the listener is still open after the shutdown")

    arun(main())


def test_stragglers_are_aborted_when_the_grace_ends(arun):
    async def main():
        async with running_gateway(close_timeout=30.0) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            started = time.monotonic()
            await gw.shutdown(grace=0.5)
            assert 0.4 < time.monotonic() - started < 2
            assert not gw.registry and not gw.timers.pending and not gw.timers.closing
            writer.close()

    arun(main())
