"""Peer: the same job as uvgate on picows (Cython WebSocket frames) over uvloop.

python bench/peers/picows_server.py --host 127.0.0.1 --port 8765 --secret S --app echo
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson
import uvloop
from peer_common import authenticate, parse_args, ready
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

GROUPS: dict[str, set[Listener]] = {}


class Listener(WSListener):
    def __init__(self, key: bytes, chat: bool) -> None:
        super().__init__()
        self.key = key
        self.chat = chat
        self.user: str | None = None
        self.groups: list[str] = []
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for g in self.groups:
            members = GROUPS.get(g)
            if members is not None:
                members.discard(self)
                if not members:
                    del GROUPS[g]

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        op = frame.msg_type
        if op == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if op not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        if self.user is None:
            reply, user = authenticate(self.key, frame.get_payload_as_bytes())
            transport.send(WSMsgType.TEXT, reply)
            if user is None:
                transport.send_close(WSCloseCode(4401), b"unauthorized")
                transport.disconnect()
            self.user = user
            return
        if not self.chat:
            transport.send(op, frame.get_payload_as_bytes())
            return
        try:
            m = orjson.loads(frame.get_payload_as_memoryview())
            kind, group = m["type"], m["group"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "join":
            GROUPS.setdefault(group, set()).add(self)
            self.groups.append(group)
            transport.send(WSMsgType.TEXT, orjson.dumps({"type": "joined", "group": group}))
        elif kind == "publish":
            members = GROUPS.get(group)
            if members:
                out = orjson.dumps(
                    {"type": "message", "group": group, "from": self.user, "data": m.get("data")}
                )
                for member in members:
                    member.transport.send(WSMsgType.TEXT, out)  # type: ignore[union-attr]


async def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = args.secret.encode()
    chat = args.app == "chat"

    def factory(request: WSUpgradeRequest) -> Listener:
        return Listener(key, chat)

    server = await ws_create_server(factory, args.host, args.port, backlog=4096)
    ready("picows", args.host, args.port, args.app)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass
