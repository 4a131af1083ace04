"""A custom first-message verifier, loaded by dotted path or passed to ``Gateway``.

The first message is a signed "ticket" your backend hands to the browser, instead of
uvgate's own token format::

    {"type": "ticket", "user": "alice", "room": "lobby", "ts": 1795345251,
     "sig": hex(HMAC-SHA256(secret, "alice:lobby:1795345251"))}

From the command line (run from the repository root, so ``examples`` is importable)::

    .venv/bin/python -m gateway serve --config examples/custom_verifier.toml

which is ``verifier = "examples.custom_verifier:TicketVerifier"`` plus a
``[verifier_options]`` table: every key there is a keyword argument of the class.
``python examples/custom_verifier.py`` runs the same thing embedded and prints a ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway import AuthFailed, BaseVerifier, ConnectionInfo, Identity, closecodes


def sign_ticket(secret: str, user: str, room: str, ts: int) -> str:
    """What the backend computes; the verifier computes it again and compares."""
    text = f"{user}:{room}:{ts}".encode()
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def make_ticket(secret: str, user: str, room: str, now: float | None = None) -> dict[str, Any]:
    ts = int(time.time() if now is None else now)
    return {
        "type": "ticket",
        "user": user,
        "room": room,
        "ts": ts,
        "sig": sign_ticket(secret, user, room, ts),
    }


class TicketVerifier(BaseVerifier):
    """Accept a fresh, correctly signed ticket for one of the allowed rooms.

    Options (the ``[verifier_options]`` table):
        secret: the HMAC key shared with the backend (required).
        max_age: seconds a ticket stays valid (default 60).
        rooms: rooms a ticket may name (default: any).
    """

    name = "ticket"  # appears in the refusal log line: verifier=ticket

    def __init__(
        self, *, secret: str, max_age: float = 60.0, rooms: Sequence[str] | None = None
    ) -> None:
        if not isinstance(secret, str) or len(secret) < 16:
            # A ValueError at load time: `uvgate serve` prints it as a configuration error.
            raise ValueError("verifier 'ticket' option 'secret' must be >= 16 characters")
        self.secret = secret
        self.max_age = float(max_age)
        self.rooms = frozenset(rooms) if rooms is not None else None

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        # Sync: called inline on the event loop, so keep it short (no I/O). For I/O,
        # make this ``async def`` and the gateway awaits it (reading paused meanwhile).
        if message.get("type") != "ticket":
            raise AuthFailed(closecodes.AUTH_FAILED, "first message must be a ticket")
        user, room, ts, sig = (message.get(k) for k in ("user", "room", "ts", "sig"))
        if not (isinstance(user, str) and user and isinstance(room, str) and room):
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed ticket")
        if not isinstance(ts, int) or isinstance(ts, bool) or not isinstance(sig, str):
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed ticket")
        expected = sign_ticket(self.secret, user, room, ts)
        if not hmac.compare_digest(expected, sig):
            raise AuthFailed(closecodes.AUTH_FAILED, "bad signature")
        if abs(time.time() - ts) > self.max_age:
            raise AuthFailed(closecodes.AUTH_FAILED, "ticket expired")
        if self.rooms is not None and room not in self.rooms:
            # Authenticated but not allowed: 4403, not 4401.
            raise AuthFailed(closecodes.AUTH_FORBIDDEN, "room not allowed")
        # The connection joins ``room`` right after authentication.
        return Identity(user, info={"room": room, "ip": conn.remote_ip}, groups=(room,))


async def verify_function(message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
    """The function form (``verifier = "examples.custom_verifier:verify_function"``):
    a plain or ``async`` function ``(message, conn) -> Identity``; it takes no options."""
    await asyncio.sleep(0)  # e.g. a database lookup
    if message.get("type") != "auth" or message.get("token") != "let-me-in":
        raise AuthFailed(closecodes.AUTH_FAILED, "unknown token")
    return Identity("guest-" + conn.connection_id)


async def main(argv: Sequence[str] | None = None) -> None:
    from gateway import Config, Gateway, setup_logging

    parser = argparse.ArgumentParser(description="Serve the chat app behind TicketVerifier.")
    parser.add_argument("--port", type=int, default=6003)
    args = parser.parse_args(argv)
    setup_logging("info")
    secret = "change-me-to-a-long-random-secret"
    verifier = TicketVerifier(secret=secret, rooms=["lobby", "ops"])
    # The built-in chat app: join / leave / publish to groups (the ticket's room is joined).
    config = Config(port=args.port, app="chat", pusher=False)
    gateway = Gateway(config, verifier=verifier)
    await gateway.start()
    print(f"listening on ws://127.0.0.1:{gateway.port}/ws", flush=True)
    print(f"first message (valid 60 s): {make_ticket(secret, 'alice', 'lobby')}", flush=True)
    await gateway.serve(install_signals=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
