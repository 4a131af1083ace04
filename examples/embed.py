"""Embedding uvgate in an asyncio program: callbacks, the registry, a broadcast from outside.

    .venv/bin/python examples/embed.py --port 6002 [--interval 5]

It prints a token; connect with any WebSocket client to ws://127.0.0.1:6002/ws, send
``{"type":"auth","token":"..."}`` as the first message, then any JSON object:

* every authenticated connection joins the group ``lobby`` and gets a ``welcome``;
* ``{"text": "hi"}`` is relayed to the rest of the lobby as ``{"type":"said",...}`` and
  acknowledged to the sender with ``{"type":"ack","n":<count>}``;
* a task that is not part of the gateway broadcasts ``{"type":"tick",...}`` to the lobby
  every ``--interval`` seconds;
* SIGTERM / Ctrl-C: the gateway closes every connection with 1001 and the program exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any

import uvloop

from gateway import CodecError, Config, Connection, Gateway, issue_token, setup_logging

LOBBY = "lobby"


def build_gateway(config: Config) -> Gateway:
    """A gateway whose application is three plain callbacks (Workerman style)."""
    gateway: Gateway

    def on_connect(conn: Connection) -> None:
        # Authenticated: conn.user is the verifier's user id, conn.id the connection id.
        conn.data = {"messages": 0}  # free per-connection storage for the application
        gateway.registry.join(conn, LOBBY)
        conn.send({"type": "welcome", "user": conn.user, "online": gateway.registry.count()})

    def on_message(conn: Connection, data: str | bytes) -> None:
        # ``data`` is str for text frames, bytes for binary (msgpack) frames.
        try:
            message = conn.codec.decode(data)
        except CodecError:
            conn.send({"type": "error", "reason": "not " + conn.codec.name})
            return
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            conn.send({"type": "error", "reason": 'expected {"text": "..."}'})
            return
        assert conn.data is not None
        conn.data["messages"] += 1
        said = {"type": "said", "user": conn.user, "text": message["text"]}
        gateway.registry.broadcast(LOBBY, said, exclude=conn)
        conn.send({"type": "ack", "n": conn.data["messages"]})

    def on_close(conn: Connection, code: int) -> None:
        # The registry has already dropped the connection from the lobby.
        gateway.registry.broadcast(LOBBY, {"type": "left", "user": conn.user, "code": code})

    gateway = Gateway(config, on_connect=on_connect, on_message=on_message, on_close=on_close)
    return gateway


async def tick(gateway: Gateway, interval: float) -> None:
    """Runs beside the gateway, not inside it: pushes to every lobby member."""
    n = 0
    while True:
        await asyncio.sleep(interval)
        n += 1
        message: dict[str, Any] = {"type": "tick", "n": n, "time": time.time()}
        gateway.registry.broadcast(LOBBY, message)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6002)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between ticks")
    args = parser.parse_args(argv)

    setup_logging("info")
    secret = os.environ.get("EMBED_SECRET") or secrets.token_urlsafe(32)
    # pusher=False: this program speaks only the native protocol on /ws.
    config = Config(host=args.host, port=args.port, secret=secret, pusher=False)
    gateway = build_gateway(config)
    await gateway.start()
    token = issue_token(secret, "alice", 3600)
    print(f"listening on ws://{args.host}:{gateway.port}{config.ws_path}", flush=True)
    print(f'first message: {{"type":"auth","token":"{token}"}}', flush=True)
    ticker = asyncio.create_task(tick(gateway, args.interval))
    try:
        await gateway.serve(install_signals=True)  # until SIGTERM / SIGINT
    finally:
        ticker.cancel()


if __name__ == "__main__":
    uvloop.run(main())
