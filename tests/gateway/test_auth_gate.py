"""One auth pipeline for both routes: the native ``/ws`` and Pusher's ``/app/{key}``.

* a verifier sees the same ``ConnectionInfo`` (cookie, authorization, query, peer) on both;
* an async verifier pauses reading on both, and what the client pipelined behind its auth
  message is handled afterwards, in order;
* a backend outage (4503) is not charged to the client's IP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import connect

from gateway import AuthFailed, BaseVerifier, ConnectionInfo, Identity
from gateway.connection import AUTHENTICATING, OPEN, Connection
from gateway.flow import AUTH
from gateway.server import Gateway
from protocol.pusher.apps import App
from tests.gwtest import running_gateway, url
from tests.pusher_ws_helpers import QUERY, app_table

SIGNIN_FIRST = App(id="6", key="key-6", secret="secret-6", first_message="signin")
HEADERS = {"Cookie": "session=abc; theme=dark", "Authorization": "Bearer t0k3n"}


class Recording(BaseVerifier):
    """Accepts token "ok", records what it was told about each connection."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[ConnectionInfo] = []

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        self.seen.append(conn)
        if message.get("token") != "ok":
            raise AuthFailed(4401, "bad token")
        return Identity("u1")


class Held(BaseVerifier):
    """An async verifier that answers when the test says so."""

    name = "held"

    def __init__(self, code: int = 0) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.code = code

    async def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        self.started.set()
        await self.release.wait()
        if self.code:
            raise AuthFailed(self.code, "backend unavailable")
        return Identity("u1")


def _server_conn(gw: Gateway) -> Connection:
    conns = [*gw.registry, *gw.timers.pending]
    assert len(conns) == 1, conns
    return conns[0]


def _options() -> dict[str, Any]:
    return {"apps": [app_table(SIGNIN_FIRST)]}


def test_verifier_sees_the_same_connection_info_on_both_routes(arun: Any) -> None:
    verifier = Recording()

    async def main() -> None:
        async with running_gateway(verifier=verifier, **_options()) as gw:
            auth = json.dumps({"type": "auth", "token": "ok"})
            async with connect(url(gw, "/ws?room=7&lang=fr"), additional_headers=HEADERS) as ws:
                await ws.send(auth)
                assert json.loads(await ws.recv())["type"] == "auth_ok"
            pusher_url = url(gw, f"/app/{SIGNIN_FIRST.key}?{QUERY}&room=7&lang=fr")
            async with connect(pusher_url, additional_headers=HEADERS) as ws:
                await ws.recv()  # connection_established
                await ws.send(auth)
                assert json.loads(await ws.recv())["event"] == "pusher:signin_success"

    arun(main())
    native, pusher = verifier.seen
    for info in (native, pusher):
        assert info.headers["cookie"] == HEADERS["Cookie"]
        assert info.headers["authorization"] == HEADERS["Authorization"]
        assert info.query["room"] == "7" and info.query["lang"] == "fr"
        assert info.remote_ip == "127.0.0.1" and info.remote_port > 0
    assert native.path == "/ws" and pusher.path == f"/app/{SIGNIN_FIRST.key}"
    assert pusher.query["protocol"] == "7"
    assert dict(native.headers).keys() == dict(pusher.headers).keys()


def test_async_verifier_pauses_reading_on_ws(arun: Any) -> None:
    verifier = Held()

    async def main() -> None:
        async with running_gateway(verifier=verifier) as gw, connect(url(gw)) as ws:
            # The auth message and two echoes pipelined behind it, in one go.
            await ws.send(json.dumps({"type": "auth", "token": "x"}))
            await ws.send("first")
            await ws.send("second")
            await asyncio.wait_for(verifier.started.wait(), 2)
            await asyncio.sleep(0.1)
            conn = _server_conn(gw)
            assert conn.state is AUTHENTICATING and conn.paused & AUTH
            assert not conn.transport.is_reading()
            try:
                early = await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                early = None
            assert early is None  # nothing reaches the app before the answer
            verifier.release.set()
            assert json.loads(await ws.recv())["type"] == "auth_ok"
            assert [await ws.recv(), await ws.recv()] == ["first", "second"]
            assert conn.state is OPEN and not conn.paused and conn.transport.is_reading()

    arun(main())


def test_async_verifier_pauses_reading_on_pusher(arun: Any) -> None:
    verifier = Held()

    async def main() -> None:
        async with (
            running_gateway(verifier=verifier, **_options()) as gw,
            connect(url(gw, f"/app/{SIGNIN_FIRST.key}?{QUERY}")) as ws,
        ):
            await ws.recv()  # connection_established
            await ws.send(json.dumps({"type": "auth", "token": "x"}))
            await ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
            await asyncio.wait_for(verifier.started.wait(), 2)
            await asyncio.sleep(0.1)
            conn = _server_conn(gw)
            assert conn.state is OPEN and conn.paused & AUTH  # open, but held
            assert not conn.transport.is_reading()
            try:
                early = await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                early = None
            assert early is None  # the ping waits behind the verifier
            verifier.release.set()
            first = json.loads(await ws.recv())
            assert first["event"] == "pusher:signin_success"
            assert json.loads(await ws.recv())["event"] == "pusher:pong"
            assert not conn.paused and conn.transport.is_reading()

    arun(main())


def test_backend_outage_is_not_charged_to_the_ip(arun: Any) -> None:
    verifier = Held(code=4503)
    verifier.release.set()

    async def main() -> None:
        async with running_gateway(verifier=verifier, auth_fail_limit=1) as gw:
            for _ in range(3):
                async with connect(url(gw)) as ws:
                    await ws.send(json.dumps({"type": "auth", "token": "x"}))
                    error = json.loads(await ws.recv())
                    assert error["code"] == 4503  # not turned into 4429
                    await ws.wait_closed()
                    assert ws.close_code == 4503
            assert gw.stats.auth_failed == 3
            assert gw.limiter.retry_after("127.0.0.1") == 0

    arun(main())
