"""Peer: the same job as uvgate on the websockets library (new asyncio API) over uvloop.

python bench/peers/websockets_server.py --host 127.0.0.1 --port 8765 --secret S --app echo
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson
import uvloop
from peer_common import authenticate, parse_args, ready
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

GROUPS: dict[str, set[ServerConnection]] = {}


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = args.secret.encode()
    chat = args.app == "chat"

    async def handler(ws: ServerConnection) -> None:
        try:
            first = await ws.recv()
        except ConnectionClosed:
            return
        reply, user = authenticate(key, first)
        await ws.send(reply.decode())
        if user is None:
            await ws.close(4401, "unauthorized")
            return
        joined: list[str] = []
        try:
            if not chat:
                async for msg in ws:
                    await ws.send(msg)
                return
            async for msg in ws:
                try:
                    m = orjson.loads(msg)
                    kind, group = m["type"], m["group"]
                except (ValueError, KeyError, TypeError):
                    continue
                if kind == "join":
                    GROUPS.setdefault(group, set()).add(ws)
                    joined.append(group)
                    await ws.send(orjson.dumps({"type": "joined", "group": group}).decode())
                elif kind == "publish":
                    members = GROUPS.get(group)
                    if members:
                        out = orjson.dumps(
                            {"type": "message", "group": group, "from": user, "data": m.get("data")}
                        ).decode()
                        broadcast(members, out)  # frames once, writes to every member
        except ConnectionClosed:
            pass
        finally:
            for g in joined:
                members = GROUPS.get(g)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del GROUPS[g]

    async with serve(
        handler, args.host, args.port, compression=None, max_queue=64, backlog=4096
    ) as server:
        ready("websockets", args.host, args.port, args.app)
        await server.serve_forever()


if __name__ == "__main__":
    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass
