"""For the Pusher HTTP API tests: signed raw requests, a gateway with its API and the
official ``pusher`` library, a Pusher socket, and a webhook receiver (aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import quote

import orjson
import pusher
from aiohttp import web
from websockets.asyncio.client import connect

from gateway.config import Config
from gateway.pusher.api import PusherApi
from gateway.server import Gateway
from protocol.pusher.apps import App
from protocol.pusher.signatures import (
    body_md5,
    sign_api_request,
    sign_channel,
    sign_user,
    verify_webhook_signature,
)
from tests.gwtest import SECRET
from tests.pusher_ws_helpers import app_table

# The apps of ``pusher_gateway()`` when none is given; ``APP`` is the default elsewhere.
APP = App(id="42", key="key-42", secret="secret-42", client_events=True)
OTHER = App(id="43", key="key-43", secret="secret-43")
DISABLED = App(id="44", key="key-44", secret="secret-44", enabled=False)
SMALL = App(id="45", key="key-45", secret="secret-45", max_channels_per_event=3, max_batch_size=2)
APPS = (APP, OTHER, DISABLED, SMALL)


def signed_target(
    app: App,
    method: str,
    path: str,
    body: bytes = b"",
    params: Sequence[tuple[str, str]] = (),
    *,
    timestamp: float | None = None,
    md5: str | None = None,
    secret: str | None = None,
    key: str | None = None,
) -> str:
    """``path?query`` signed like the official libraries (``md5=""``: no body_md5)."""
    pairs = [
        *params,
        ("auth_key", key or app.key),
        ("auth_timestamp", str(int(time.time() if timestamp is None else timestamp))),
        ("auth_version", "1.0"),
    ]
    if md5 != "":
        pairs.append(("body_md5", md5 or body_md5(body)))
    pairs.append(("auth_signature", sign_api_request(secret or app.secret, method, path, pairs)))
    query = "&".join(f"{k}={quote(v, safe=',')}" for k, v in pairs)
    return f"{path}?{query}"


def raw(method: str, target: str, body: bytes = b"", *, keep_alive: bool = False) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> object:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(status, headers, body)


async def request(port: int, method: str, target: str, body: bytes = b"") -> Response:
    """One request on a fresh connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw(method, target, body))
        return await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def call(
    port: int,
    app: App,
    method: str,
    path: str,
    body: object = None,
    params: Sequence[tuple[str, str]] = (),
    **sign: object,
) -> Response:
    """A correctly signed request (``sign`` overrides: timestamp, md5, secret, key)."""
    data = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    target = signed_target(app, method, path, data, params, **sign)  # type: ignore[arg-type]
    return await request(port, method, target, data)


class Running:
    def __init__(self, gw: Gateway, api: PusherApi, engine: Any) -> None:
        self.gw = gw
        self.api = api
        self.engine = engine

    @property
    def port(self) -> int:
        return self.gw.port

    def client(self, app: App = APP, port: int | None = None) -> pusher.Pusher:
        return pusher.Pusher(
            app_id=app.id,
            key=app.key,
            secret=app.secret,
            host="127.0.0.1",
            port=port or self.port,
            ssl=False,
        )

    def ws_url(self, app: App = APP) -> str:
        return f"ws://127.0.0.1:{self.port}/app/{app.key}?protocol=7&client=py&version=1"


@contextlib.asynccontextmanager
async def pusher_gateway(*apps: App, **options: Any) -> AsyncIterator[Running]:
    """A gateway with the Pusher service and its HTTP API, as the gateway wires them."""
    config: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "secret": SECRET, "node_id": 7}
    config.update(options)
    config["apps"] = [app_table(a) for a in apps or APPS]
    gw = Gateway(Config(**config))
    assert gw.pusher is not None
    api = gw.pusher.api
    await gw.start()
    try:
        yield Running(gw, api, gw.pusher)
    finally:
        await gw.shutdown(grace=1.0)


class Socket:
    """A Pusher protocol 7 client over the websockets library."""

    def __init__(self, ws: Any, socket_id: str) -> None:
        self.ws = ws
        self.socket_id = socket_id

    @classmethod
    async def open(cls, run: Running, app: App = APP) -> Socket:
        ws = await connect(run.ws_url(app), max_queue=None)  # tests may leave replies unread
        hello = json.loads(await ws.recv())
        assert hello["event"] == "pusher:connection_established"
        return cls(ws, json.loads(hello["data"])["socket_id"])

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"event": event, "data": data}))

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def next_event(self, timeout: float = 5) -> dict[str, Any]:
        """The next message that is not presence bookkeeping."""
        while True:
            msg = await self.recv(timeout)
            if not msg["event"].startswith("pusher_internal:member_"):
                return msg

    async def subscribe(self, channel: str, user_id: str | None = None, app: App = APP) -> None:
        data: dict[str, Any] = {"channel": channel}
        if user_id is not None:
            channel_data = json.dumps({"user_id": user_id, "user_info": {"n": user_id}})
            data["channel_data"] = channel_data
            data["auth"] = sign_channel(app.key, app.secret, self.socket_id, channel, channel_data)
        elif channel.startswith("private-"):
            data["auth"] = sign_channel(app.key, app.secret, self.socket_id, channel)
        await self.send("pusher:subscribe", data)
        reply = await self.next_event()
        assert reply["event"] == "pusher_internal:subscription_succeeded", reply
        assert reply["channel"] == channel

    async def signin(self, user_id: str, app: App = APP) -> None:
        user_data = json.dumps({"id": user_id})
        auth = sign_user(app.key, app.secret, self.socket_id, user_data)
        await self.send("pusher:signin", {"auth": auth, "user_data": user_data})
        reply = await self.recv()
        assert reply["event"] == "pusher:signin_success", reply

    async def silent(self, seconds: float = 0.2) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()


class Receiver:
    """A webhook endpoint: answers ``statuses`` in turn (then 200), or hangs."""

    def __init__(self, key: str, secret: str) -> None:
        self.key = key
        self.secret = secret
        self.attempts: list[tuple[float, dict[str, Any]]] = []  # (arrival, body)
        self.events: list[dict[str, Any]] = []  # from 2xx answers only
        self.bad_signatures = 0
        self.peers: set[object] = set()  # client addresses: one when the pool reuses
        self.statuses: deque[int] = deque()
        self.hang = False
        self.hanging = 0
        self.release = asyncio.Event()
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Pusher-Key") != self.key or not verify_webhook_signature(
            self.secret, body, request.headers.get("X-Pusher-Signature")
        ):
            self.bad_signatures += 1
            return web.Response(status=401)
        payload = json.loads(body)
        self.attempts.append((time.monotonic(), payload))
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        if self.hang:
            self.hanging += 1
            await self.release.wait()
            return web.Response(status=503)
        status = self.statuses.popleft() if self.statuses else 200
        if status == 200:
            self.events.extend(payload["events"])
        return web.Response(status=status, text="ok")

    def names(self, channel: str | None = None) -> list[str]:
        return [e["name"] for e in self.events if channel is None or e["channel"] == channel]

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events so far: {self.events}")
            await asyncio.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextlib.asynccontextmanager
async def receiver_for(app: App) -> AsyncIterator[Receiver]:
    receiver = Receiver(app.key, app.secret)
    web_app = web.Application()
    web_app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(web_app, shutdown_timeout=0.5, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()
