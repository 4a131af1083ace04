"""A connection's life makes no reference cycle, so ``uvgate serve`` may raise the
collector's first threshold (gateway/collector.py).

Each case runs whole connection lives (upgrade, auth or subscriptions, messages, close)
through the real connection chain on a transport that records what it is given, with
the collector off, then counts what a full collection finds unreachable: any cycle a
connection leaves behind is found there, in both forms (compiled and pure-Python twin).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from gateway import collector
from gateway.config import Config
from gateway.connection import Connection
from gateway.server import Gateway
from gateway.tokens import issue_token
from gateway.workers import serve_worker
from protocol.frames import OP_CLOSE, OP_TEXT, encode_client_frame
from tests.gwtest import RecordingTransport, upgrade_request

SECRET = "collector-test-secret"


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    return encode_client_frame(opcode, payload, mask=b"\x01\x02\x03\x04")


CLOSE = frame(b"\x03\xe8", OP_CLOSE)


@contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def unreachable(run: Callable[[], None]) -> Counter[str]:
    """What a full collection finds after ``run`` (with the collector off meanwhile)."""
    with collector_off():
        run()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return Counter(type(o).__name__ for o in gc.garbage)


async def _gateway(**options: Any) -> Gateway:
    gw = Gateway(Config(secret=SECRET, node_id=1, **options))
    gw.state.accepting = True
    gw.timers.now = asyncio.get_running_loop().time()
    return gw


def _open(gw: Gateway, path: str) -> tuple[Connection, RecordingTransport]:
    conn = Connection(gw.ctx, gw.router)
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(upgrade_request(path))
    assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 101 ")
    return conn, transport


def test_native_connections_leave_no_cycle(arun: Any) -> None:
    async def main() -> Counter[str]:
        gw = await _gateway(pusher=False, app="chat")
        token = issue_token(SECRET, "ann", 3600, groups=["room"]).encode()
        good = frame(b'{"type":"auth","token":"' + token + b'"}')
        bad = frame(b'{"type":"auth","token":"v1.forged.token"}')
        say = frame(b'{"type":"say","group":"room","text":"hi"}')

        def lives() -> None:
            for i in range(20):
                conn, transport = _open(gw, "/ws")
                conn.data_received(good)
                conn.data_received(say)
                conn.data_received(CLOSE)
                conn.connection_lost(None)
                assert b"auth_ok" in b"".join(transport.writes)
                if i >= 5:
                    continue  # 10 refusals in all: under the per-IP failure limit
                conn, transport = _open(gw, "/ws")
                conn.data_received(bad)  # refused: error frame, then close
                conn.connection_lost(None)
                assert b"4401" in b"".join(transport.writes)

        lives()  # first lives: lazily made module state is not a connection's
        return unreachable(lives)

    assert arun(main()) == Counter()


def test_pusher_connections_leave_no_cycle(arun: Any) -> None:
    async def main() -> Counter[str]:
        gw = await _gateway(pusher=True, app_id="1", app_key="key", app_secret="app-secret")

        def subscribe(conn: Connection, transport: RecordingTransport) -> None:
            established = transport.writes[1]
            body = json.loads(established[established.index(b"{") :])
            socket_id = json.loads(body["data"])["socket_id"]
            conn.data_received(
                frame(orjson.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}}))
            )
            channel, member = "presence-room", json.dumps({"user_id": "ann"})
            signed = f"{socket_id}:{channel}:{member}".encode()
            signature = hmac.new(b"app-secret", signed, hashlib.sha256).hexdigest()
            data = {"channel": channel, "auth": f"key:{signature}", "channel_data": member}
            conn.data_received(frame(orjson.dumps({"event": "pusher:subscribe", "data": data})))

        def lives() -> None:
            for _ in range(20):
                conn, transport = _open(gw, "/app/key?protocol=7")
                subscribe(conn, transport)
                conn.data_received(CLOSE)
                conn.connection_lost(None)
                replies = b"".join(transport.writes)
                assert replies.count(b"subscription_succeeded") == 2
                conn, transport = _open(gw, "/app/key?protocol=7")
                conn.connection_lost(None)  # gone without a close frame

        lives()
        await asyncio.sleep(0)  # the engine's leave/disconnect calls of those lives
        return unreachable(lives)

    assert arun(main()) == Counter()


def test_tune_raises_only_the_first_threshold() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        collector.tune()
        assert gc.get_threshold() == (collector.GEN0_THRESHOLD, 11, 12)
        gc.set_threshold(50_000, 10, 10)  # set higher by the application: kept
        collector.tune()
        assert gc.get_threshold() == (50_000, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_serve_sets_the_collector_once_listening(arun: Any) -> None:
    saved = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def ready(_port: int) -> None:
        seen.append(gc.get_threshold())
        os.kill(os.getpid(), signal.SIGTERM)  # serve_worker's own handler stops it

    try:
        gc.set_threshold(700, 10, 10)
        config = Config(secret=SECRET, host="127.0.0.1", port=0, pusher=False, shutdown_grace=0.1)
        arun(serve_worker(config, on_ready=ready))
    finally:
        gc.set_threshold(*saved)
    assert seen == [(collector.GEN0_THRESHOLD, 10, 10)]
