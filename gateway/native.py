"""The native uvgate protocol on ``/ws``: the first message authenticates, then the app.

Wire contract (JSON text frames by default, MessagePack binary frames with the
``uvgate.msgpack`` subprotocol):

* client -> ``{"type":"auth","token":"..."}``
* success <- ``{"type":"auth_ok","id":"<connection id>","user":"<user id>"}``
* failure <- ``{"type":"error","code":44xx,"reason":"..."}`` then a close frame with
  the same code; nothing else is ever delivered, and the socket is gone within
  ``close_timeout`` even if the peer never answers the close.

Every refusal is logged once (remote IP, connection id, verifier, code, reason,
time), counted, and charged to the IP's failure window; past ``auth_fail_limit``
the IP's next upgrades get HTTP 429 before any WebSocket work.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from gateway.connection import AUTHENTICATING, AWAITING_AUTH, OPEN, Connection
from gateway.verifiers.base import AuthFailed, ConnectionInfo, Identity, Verifier
from protocol import closecodes
from protocol.codecs import DEFAULT_SUBPROTOCOL, SUBPROTOCOLS, CodecError, frame_message
from protocol.handshake import Request

if TYPE_CHECKING:
    from gateway.apps import App
    from gateway.server import Gateway

log = logging.getLogger("uvgate.auth")

# Subprotocols in server preference order: JSON unless the client asks for msgpack.
NATIVE_SUBPROTOCOLS = (DEFAULT_SUBPROTOCOL, *(p for p in SUBPROTOCOLS if p != DEFAULT_SUBPROTOCOL))


_NO_QUERY: Mapping[str, str] = MappingProxyType({})


def connection_info(conn: Connection) -> ConnectionInfo:
    request: Request | None = conn.request
    if request is None:
        return ConnectionInfo(conn.id, conn.ip, 0, "", _NO_QUERY, _NO_QUERY, conn.subprotocol)
    query = _NO_QUERY
    if request.query:
        query = dict(parse_qsl(request.query, keep_blank_values=True))
    # A read-only view of the request's headers: no copy per authentication.
    return ConnectionInfo(
        conn.id,
        conn.ip,
        conn.peer[1],
        request.path,
        query,
        MappingProxyType(request.headers),
        conn.subprotocol,
    )


class NativeHandler:
    shutdown_code: int = closecodes.GOING_AWAY
    subprotocols: Sequence[str] = NATIVE_SUBPROTOCOLS

    def __init__(self, gateway: Gateway, verifier: Verifier, app: App) -> None:
        self.gw = gateway
        self.verifier = verifier
        self.app = app
        self.verifier_name = getattr(verifier, "name", type(verifier).__name__)
        self.requires_message = getattr(verifier, "requires_message", True)
        # Cache the app's callbacks and whether they are coroutines, once.
        self._on_connect = self._wrap(app.on_connect)
        self._on_message = self._wrap(app.on_message)
        self._on_close = self._wrap(app.on_close)

    def _wrap(self, fn: Any) -> Any:
        if not inspect.iscoroutinefunction(fn):
            return fn
        track = self.gw.track

        def spawn(*args: Any) -> None:
            track(asyncio.ensure_future(fn(*args)))

        return spawn

    # ------------------------------------------------------------ WsHandler
    def accept(self, conn: Connection, request: Request) -> None:
        conn.codec = SUBPROTOCOLS[conn.subprotocol or DEFAULT_SUBPROTOCOL]

    def on_open(self, conn: Connection) -> None:
        if not self.requires_message:
            # The ``none`` verifier: anonymous, no auth message, no ack (so an
            # echo target behaves like a plain echo server for conformance tests).
            self._verify(conn, {})
            return
        conn.set_deadline(self.gw.config.auth_timeout)

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        if conn.state is OPEN:  # the hot path, straight to the app
            self._on_message(conn, data)
            return
        # The first message: it must authenticate.
        if self.gw.limiter.retry_after(conn.ip):
            self.refuse(conn, closecodes.AUTH_RATE_LIMITED, "too many failed attempts")
            return
        try:
            message = conn.codec.decode(data)
        except CodecError:
            self.refuse(
                conn, closecodes.AUTH_FAILED, "first message is not valid " + conn.codec.name
            )
            return
        if not isinstance(message, dict):
            self.refuse(conn, closecodes.AUTH_FAILED, "first message must be an object")
            return
        self._verify(conn, message)

    def on_deadline(self, conn: Connection) -> None:
        if conn.state is AWAITING_AUTH or conn.state is AUTHENTICATING:
            self.gw.stats.auth_timeouts += 1
            self.refuse(conn, closecodes.AUTH_TIMEOUT, "authentication timeout")

    def on_close(self, conn: Connection, code: int) -> None:
        if conn.user is not None:
            self._on_close(conn, code)

    # ------------------------------------------------------------ verifying
    def _verify(self, conn: Connection, message: dict[str, Any]) -> None:
        try:
            result = self.verifier.verify(message, connection_info(conn))
        except Exception as exc:
            self._verifier_raised(conn, exc)
            return
        if type(result) is not Identity and inspect.isawaitable(result):
            conn.begin_async_auth()
            self.gw.track(asyncio.ensure_future(self._verify_async(conn, result)))
        else:
            self._accept(conn, result)

    async def _verify_async(self, conn: Connection, pending: Awaitable[Identity]) -> None:
        try:
            identity = await pending
        except Exception as exc:
            self._verifier_raised(conn, exc)
            return
        self._accept(conn, identity)
        conn.resume_after_auth()

    def _verifier_raised(self, conn: Connection, exc: Exception) -> None:
        """AuthFailed refuses with its code; anything else is a bug: 1011, details logged only."""
        if isinstance(exc, AuthFailed):
            self.refuse(conn, exc.code, exc.reason)
            return
        log.error("verifier %s failed", self.verifier_name, exc_info=exc)
        self.refuse(conn, closecodes.INTERNAL_ERROR, "internal error")

    def _accept(self, conn: Connection, identity: Any) -> None:
        if conn.state is not AWAITING_AUTH and conn.state is not AUTHENTICATING:
            return  # closed (or timed out) while an async verifier ran
        if not isinstance(identity, Identity):
            log.error(
                "verifier %s returned %r, not an Identity", self.verifier_name, type(identity)
            )
            self.refuse(conn, closecodes.INTERNAL_ERROR, "internal error")
            return
        conn.authenticated(identity)
        # From now on messages go straight to the app, not through this handler.
        conn.message_cb = self._on_message
        self.gw.stats.auth_ok += 1
        if self.requires_message:
            conn.send({"type": "auth_ok", "id": conn.id, "user": identity.user})
        self._on_connect(conn)

    def refuse(self, conn: Connection, code: int, reason: str) -> None:
        """Error frame, close frame with the same code, one log line, one count."""
        if conn.state is not AWAITING_AUTH and conn.state is not AUTHENTICATING:
            return
        gw = self.gw
        ip = conn.ip
        failures = gw.limiter.record_failure(ip)
        if code != closecodes.AUTH_RATE_LIMITED and gw.limiter.retry_after(ip):
            # This failure crossed the limit: say so, so the client backs off.
            code, reason = closecodes.AUTH_RATE_LIMITED, "too many failed attempts"
        gw.stats.auth_failed += 1
        log.warning(
            "auth refused",
            extra={
                "fields": {
                    "ip": ip,
                    "conn": conn.id,
                    "verifier": self.verifier_name,
                    "code": code,
                    "reason": reason,
                    "failures": failures,
                }
            },
        )
        conn.write_control(
            frame_message(conn.codec, {"type": "error", "code": code, "reason": reason})
        )
        conn.close(code, reason)
