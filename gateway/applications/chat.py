"""Group chat over the registry: join, leave, publish to everyone in a group.

Messages (decoded with the connection's codec, JSON or MessagePack):
``{"type":"join","group":G}`` -> ``{"type":"joined","group":G}``;
``{"type":"leave","group":G}`` -> ``{"type":"left","group":G}``;
``{"type":"publish","group":G,"data":X}`` -> every member of G receives
``{"type":"message","group":G,"from":USER,"data":X}`` (encoded once per codec).
Errors answer ``{"type":"error","code":4400,"reason":...}`` and keep the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.codecs import CodecError

if TYPE_CHECKING:
    from gateway.connection import Connection
    from gateway.registry import Registry

MAX_GROUP_NAME = 200
MAX_GROUPS_PER_CONNECTION = 100


def _error(reason: str) -> dict[str, Any]:
    return {"type": "error", "code": 4400, "reason": reason}


class ChatApplication:
    def __init__(self, registry: Registry[Connection]) -> None:
        self.registry = registry

    def on_connect(self, conn: Connection) -> None:
        return None

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        try:
            msg = conn.codec.decode(data)
        except CodecError:
            conn.send(_error("message is not valid for the codec"))
            return
        if not isinstance(msg, dict):
            conn.send(_error("message must be an object"))
            return
        kind = msg.get("type")
        group = msg.get("group")
        if not isinstance(group, str) or not group or len(group) > MAX_GROUP_NAME:
            conn.send(_error("group must be a non-empty string of at most 200 characters"))
            return
        if kind == "publish":
            self.registry.broadcast(
                group,
                {"type": "message", "group": group, "from": conn.user, "data": msg.get("data")},
            )
        elif kind == "join":
            if conn.groups is not None and len(conn.groups) >= MAX_GROUPS_PER_CONNECTION:
                conn.send(_error("too many groups"))
                return
            self.registry.join(conn, group)
            conn.send({"type": "joined", "group": group})
        elif kind == "leave":
            self.registry.leave(conn, group)
            conn.send({"type": "left", "group": group})
        else:
            conn.send(_error("unknown message type"))

    def on_close(self, conn: Connection, code: int) -> None:
        return None  # the registry drops group memberships itself
