"""Peer: the same job as uvgate on aiohttp's WebSocketResponse over uvloop.

python bench/peers/aiohttp_server.py --host 127.0.0.1 --port 8765 --secret S --app echo
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson
import uvloop
from aiohttp import WSMsgType, web
from peer_common import authenticate, parse_args, ready

GROUPS: dict[str, set[web.WebSocketResponse]] = {}


def make_app(key: bytes, chat: bool) -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        msg = await ws.receive()
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return ws
        reply, user = authenticate(key, msg.data)
        await ws.send_str(reply.decode())
        if user is None:
            await ws.close(code=4401, message=b"unauthorized")
            return ws
        joined: list[str] = []
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if not chat:
                        await ws.send_str(msg.data)
                        continue
                    try:
                        m = orjson.loads(msg.data)
                        kind, group = m["type"], m["group"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    if kind == "join":
                        GROUPS.setdefault(group, set()).add(ws)
                        joined.append(group)
                        await ws.send_str(orjson.dumps({"type": "joined", "group": group}).decode())
                    elif kind == "publish":
                        members = GROUPS.get(group)
                        if members:
                            out = orjson.dumps(
                                {
                                    "type": "message",
                                    "group": group,
                                    "from": user,
                                    "data": m.get("data"),
                                }
                            ).decode()
                            for member in list(members):
                                await member.send_str(out)
                elif msg.type == WSMsgType.BINARY and not chat:
                    await ws.send_bytes(msg.data)
        finally:
            for g in joined:
                members = GROUPS.get(g)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del GROUPS[g]
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    app = make_app(args.secret.encode(), args.app == "chat")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    ready("aiohttp", args.host, args.port, args.app)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass
