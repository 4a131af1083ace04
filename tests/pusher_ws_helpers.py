"""Pusher protocol 7 clients over ``websockets`` for the gateway tests, and the
``[[apps]]`` table of an app (what a TOML file would hold)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.server import Gateway
from protocol.pusher.apps import App
from protocol.pusher.signatures import sign_channel, sign_user

# The default app of ``Client``: client events on, a 30 s activity timeout.
APP = App(id="1", key="key-1", secret="secret-1", client_events=True, activity_timeout=30)

QUERY = "protocol=7&client=js&version=8.4.0&flash=false"


def app_table(app: App) -> dict[str, Any]:
    """``app`` as a ``[[apps]]`` config table (what a TOML file would hold)."""
    table: dict[str, Any] = {}
    for f in dataclasses.fields(App):
        value = getattr(app, f.name)
        if value is None or f.name == "webhooks":
            continue
        table[f.name] = value
    if app.webhooks:
        table["webhooks"] = [
            {"url": w.url, "event_types": sorted(w.event_types)} for w in app.webhooks
        ]
    return table


def decoded(msg: dict[str, Any]) -> Any:
    data = msg.get("data")
    return json.loads(data) if isinstance(data, str) else data


class Client:
    """One Pusher socket: ``send``/``recv`` JSON, ``expect`` the next event."""

    def __init__(self, ws: ClientConnection, socket_id: str, established: dict[str, Any]):
        self.ws = ws
        self.socket_id = socket_id
        self.established = established

    @classmethod
    async def open(cls, gw: Gateway, app: App = APP, query: str = QUERY) -> Client:
        ws = await connect(f"ws://127.0.0.1:{gw.port}/app/{app.key}?{query}")
        first = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert first["event"] == "pusher:connection_established", first
        return cls(ws, decoded(first)["socket_id"], first)

    async def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        msg: dict[str, Any] = {"event": event, "data": {} if data is None else data}
        if channel is not None:
            msg["channel"] = channel
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = 2.0) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), timeout)))

    async def expect(self, event: str, channel: str | None = None) -> dict[str, Any]:
        msg = await self.recv()
        assert msg["event"] == event, msg
        if channel is not None:
            assert msg.get("channel") == channel, msg
        return msg

    async def silent(self, timeout: float = 0.2) -> None:
        with pytest.raises(TimeoutError):
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
            pytest.fail(f"unexpected message {msg!r}")

    async def closed(self, timeout: float = 3.0) -> tuple[int | None, str]:
        """Wait for the server's close; messages before it are skipped."""
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")

    async def error_then_close(self, code: int) -> dict[str, Any]:
        err = await self.expect("pusher:error")
        assert decoded(err)["code"] == code, err
        assert (await self.closed())[0] == code
        return decoded(err)

    async def subscribe(self, channel: str, app: App = APP, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel, **extra}
        if channel.startswith(("private-", "presence-")) and "auth" not in extra:
            channel_data = extra.get("channel_data")
            data["auth"] = sign_channel(app.key, app.secret, self.socket_id, channel, channel_data)
        await self.send("pusher:subscribe", data)
        return await self.expect("pusher_internal:subscription_succeeded", channel)

    async def join(self, channel: str, user_id: str, app: App = APP, **info: Any) -> Any:
        channel_data = json.dumps({"user_id": user_id, "user_info": info or None})
        ok = await self.subscribe(channel, app, channel_data=channel_data)
        return decoded(ok)["presence"]

    async def signin(self, user_id: str, app: App = APP, **user: Any) -> dict[str, Any]:
        user_data = json.dumps({"id": user_id, **user})
        auth = sign_user(app.key, app.secret, self.socket_id, user_data)
        await self.send("pusher:signin", {"auth": auth, "user_data": user_data})
        return await self.expect("pusher:signin_success")

    async def aclose(self) -> None:
        await self.ws.close()


@contextlib.asynccontextmanager
async def clients(gw: Gateway, n: int, app: App = APP) -> AsyncIterator[list[Client]]:
    opened = [await Client.open(gw, app) for _ in range(n)]
    try:
        yield opened
    finally:
        for c in opened:
            await c.aclose()


async def settle(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
