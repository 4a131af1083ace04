"""Peer: the same job as uvgate on socketify (uWebSockets in C++, Python callbacks via cffi).

python bench/peers/socketify_server.py --host 127.0.0.1 --port 8765 --secret S --app echo

uWebSockets does the handshake, framing, unmasking, ping/pong and the close handshake in
C++; Python runs only the callbacks: the HMAC token check of the first message, the echo
and the chat commands. Fan-out uses uWS's own topics (``app.publish``: one frame, written
to every subscriber in C++), the publisher included, as the other peers do.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson
from peer_common import authenticate, parse_args, ready

try:
    from socketify import App, AppListenOptions, OpCode
except (ImportError, OSError) as exc:  # the bundled libsocketify.so needs libuv1 (Debian)
    print(f"socketify is not usable: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

# Authenticated connections, keyed by uWS's socket pointer (a cdata, hashable by address);
# removed in the close handler so a reused address never inherits a user.
USERS: dict[Any, str] = {}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = args.secret.encode()
    chat = args.app == "chat"
    app = App()

    def on_message(ws: Any, message: str | bytes, opcode: OpCode) -> None:
        user = USERS.get(ws.ws)
        if user is None:
            reply, user = authenticate(key, message)
            ws.send(reply, OpCode.TEXT)
            if user is None:
                ws.end(4401, b"unauthorized")
            else:
                USERS[ws.ws] = user
            return
        if not chat:
            ws.send(message, opcode)
            return
        try:
            m = orjson.loads(message)
            kind, group = m["type"], m["group"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "join":
            ws.subscribe(group)
            ws.send(orjson.dumps({"type": "joined", "group": group}), OpCode.TEXT)
        elif kind == "publish":
            out = orjson.dumps(
                {"type": "message", "group": group, "from": user, "data": m.get("data")}
            )
            app.publish(group, out, OpCode.TEXT)  # encoded once, sent to every subscriber

    def on_close(ws: Any, code: int, message: bytes | None) -> None:
        USERS.pop(ws.ws, None)

    app.ws(
        "/*",
        {
            "max_payload_length": 1 << 20,
            "idle_timeout": 0,  # no idle close: the generator holds connections silently
            "max_backpressure": 1 << 20,
            "message": on_message,
            "close": on_close,
        },
    )

    def on_listen(config: Any) -> None:
        ready("socketify", args.host, args.port, args.app)

    app.listen(AppListenOptions(port=args.port, host=args.host), on_listen)
    app.run()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
