"""The native uvgate protocol on ``/ws``: the first message authenticates, then the app.

Wire contract (JSON text frames by default, MessagePack binary frames with the
``uvgate.msgpack`` subprotocol):

* client -> ``{"type":"auth","token":"..."}``
* success <- ``{"type":"auth_ok","id":"<connection id>","user":"<user id>"}``
* failure <- ``{"type":"error","code":44xx,"reason":"..."}`` then a close frame with
  the same code; nothing else is ever delivered, and the socket is gone within
  ``close_timeout`` even if the peer never answers the close.

Authentication goes through the gateway's one ``AuthGate``: every refusal is logged once
(remote IP, connection id, verifier, code, reason), counted, and charged to the IP's
failure window; past ``auth_fail_limit`` the IP's next upgrades get HTTP 429 before any
WebSocket work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from gateway.applications import Application
from gateway.auth import AuthGate, Refusal, escalate_to_rate_limit
from gateway.connection import AUTHENTICATING, AWAITING_AUTH, OPEN, Connection
from gateway.liveness import Heartbeat
from gateway.stats import Stats
from gateway.tasks import TaskGroup
from gateway.verifiers.base import Identity
from protocol import closecodes
from protocol.codecs import DEFAULT_SUBPROTOCOL, SUBPROTOCOLS, CodecError, frame_message
from protocol.handshake import Request

# Subprotocols in server preference order: JSON unless the client asks for msgpack.
NATIVE_SUBPROTOCOLS = (DEFAULT_SUBPROTOCOL, *(p for p in SUBPROTOCOLS if p != DEFAULT_SUBPROTOCOL))


class NativeHandler:
    shutdown_code: int = closecodes.GOING_AWAY
    subprotocols: Sequence[str] = NATIVE_SUBPROTOCOLS

    def __init__(
        self,
        gate: AuthGate,
        app: Application,
        *,
        tasks: TaskGroup,
        stats: Stats,
        heartbeat: Heartbeat,
        auth_timeout: float,
    ) -> None:
        self.gate = gate
        self.app = app
        self.stats = stats
        self.heartbeat = heartbeat
        self.auth_timeout = auth_timeout
        # Cache the app's callbacks and whether they are coroutines, once.
        self._on_connect = _wrap(app.on_connect, tasks)
        self._on_message = _wrap(app.on_message, tasks)
        self._on_close = _wrap(app.on_close, tasks)

    # ------------------------------------------------------------ WsHandler
    def accept(self, conn: Connection, request: Request) -> None:
        conn.codec = SUBPROTOCOLS[conn.subprotocol or DEFAULT_SUBPROTOCOL]

    def on_open(self, conn: Connection) -> None:
        if not self.gate.requires_message:
            # The ``none`` verifier: anonymous, no auth message, no ack (so an
            # echo target behaves like a plain echo server for conformance tests).
            self.gate.verify(conn, {}, self._accept, self.refuse)
            return
        conn.set_deadline(self.auth_timeout)

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        if conn.state is OPEN:  # the hot path, straight to the app
            self._on_message(conn, data)
            return
        # The first message: it must authenticate.
        if self.gate.retry_after(conn.ip):
            self.refuse(conn, Refusal(closecodes.AUTH_RATE_LIMITED, "too many failed attempts"))
            return
        try:
            message = conn.codec.decode(data)
        except CodecError:
            reason = "first message is not valid " + conn.codec.name
            self.refuse(conn, Refusal(closecodes.AUTH_FAILED, reason))
            return
        if not isinstance(message, dict):
            self.refuse(conn, Refusal(closecodes.AUTH_FAILED, "first message must be an object"))
            return
        self.gate.verify(conn, message, self._accept, self.refuse)

    def on_deadline(self, conn: Connection) -> None:
        if conn.state is AWAITING_AUTH or conn.state is AUTHENTICATING:
            self.stats.auth_timeouts += 1
            self.refuse(conn, Refusal(closecodes.AUTH_TIMEOUT, "authentication timeout"))

    def on_silence(self, conn: Connection, silent: float) -> None:
        self.heartbeat.check(conn, silent)

    def on_close(self, conn: Connection, code: int) -> None:
        if conn.user is not None:
            self._on_close(conn, code)

    # ------------------------------------------------------------ answers
    def _accept(self, conn: Connection, identity: Identity) -> None:
        if conn.state is not AWAITING_AUTH and conn.state is not AUTHENTICATING:
            return
        conn.authenticated(identity)
        # From now on messages go straight to the app, not through this handler.
        conn.message_cb = self._on_message
        self.stats.auth_ok += 1
        if self.gate.requires_message:
            conn.send({"type": "auth_ok", "id": conn.id, "user": identity.user})
        self._on_connect(conn)

    def refuse(self, conn: Connection, refusal: Refusal) -> None:
        """Error frame, close frame with the same code, one log line, one count."""
        if conn.state is not AWAITING_AUTH and conn.state is not AUTHENTICATING:
            return
        refusal = self.gate.refuse(
            conn,
            refusal,
            route="native",
            at_limit=escalate_to_rate_limit,
            verifier=self.gate.verifier_name,
        )
        code, reason = refusal.code, refusal.reason
        conn.write_control(
            frame_message(conn.codec, {"type": "error", "code": code, "reason": reason})
        )
        conn.close(code, reason)


def _wrap(fn: Callable[..., Any], tasks: TaskGroup) -> Callable[..., Any]:
    """A coroutine callback runs as a task; a plain one is called inline (the fast path)."""
    if not inspect.iscoroutinefunction(fn):
        return fn

    def spawn(*args: Any) -> None:
        tasks.spawn(fn(*args))

    return spawn
