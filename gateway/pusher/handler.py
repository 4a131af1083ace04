"""The Pusher protocol v7 WebSocket route: ``/app/{key}?protocol=7``.

One ``PusherHandler`` serves every Pusher socket; per-socket state is the ``Session`` in
``conn.session``. Frames are parsed and judged by the sans-I/O layer (``protocol.pusher``);
the engine keeps the indexes and fans out.

Connection refusals (unknown key 4001, disabled 4003, over quota 4004, bad protocol
4006-4008) complete the upgrade, send ``pusher:error`` and close with the code: pusher-js
reads a refusal from the close code only (pusher-protocol.md "Connection").

Authentication policy, per app (``App.auth_failure``, ``require_auth_within``,
``first_message``) — stricter than soketi and Reverb, which leave sockets open:

* a bad channel signature answers ``pusher:subscription_error`` (laravel-echo's
  ``.error()``); with ``auth_failure="close"`` (the default) it is followed by
  ``pusher:error`` 4009 and a close with 4009. ``"error"`` keeps the socket, as Pusher does,
  until the IP passes ``auth_fail_limit`` failures in the window (then it closes too).
* a bad ``pusher:signin`` always closes with 4009 (as Pusher does).
* ``require_auth_within=N``: a socket that has neither signed in nor joined a channel
  needing a signature within N s is closed with 4009.
* ``first_message="signin"``: before a good signin only ping/pong/signin are accepted
  (``authorize.check_first_message``); anything else closes with 4009. The native
  ``{"type":"auth","token":...}`` message, checked by the gateway's verifier, counts as a
  signin too. Such apps get a deadline: ``require_auth_within``, else ``auth_timeout``.

Every authentication failure is logged once (logger ``uvgate.auth``, one structured line:
ip, conn, app, channel, reason, code), counted in ``auth_failed`` and charged to the IP in
the gateway's failure limiter, so past ``auth_fail_limit`` the IP's next upgrades get HTTP
429 before any WebSocket work (the core checks the limiter on every upgrade).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

import orjson

from gateway.connection import OPEN, Connection
from gateway.pusher.engine import PusherEngine, text_frame
from gateway.pusher.session import Session
from gateway.verifiers.base import AuthFailed, ConnectionInfo, Identity, clip_reason
from protocol.handshake import Request
from protocol.pusher import messages
from protocol.pusher.apirequest import parse_query
from protocol.pusher.apps import App
from protocol.pusher.authorize import (
    SignedInUser,
    authorize_signin,
    authorize_subscription,
    check_client_event,
    check_first_message,
)
from protocol.pusher.channels import is_valid_channel_name
from protocol.pusher.connect import check_connect, check_quota
from protocol.pusher.errors import (
    PATH_NOT_FOUND,
    RECONNECT_NOW,
    UNAUTHORIZED,
    PusherError,
    SubscriptionError,
)
from protocol.pusher.messages import (
    ClientEvent,
    Ping,
    Pong,
    Signin,
    Subscribe,
    Unsubscribe,
    parse_client_message,
)
from protocol.pusher.ratelimit import rate_limit_error, take

if TYPE_CHECKING:
    from gateway.server import Gateway

log = logging.getLogger("uvgate.auth")
connect_log = logging.getLogger("uvgate.pusher")

AUTH_TIMEOUT = "Authentication timeout"


class PusherHandler:
    # pusher-js asks for no subprotocol.
    subprotocols: Sequence[str] = ()
    # pusher-protocol.md: 4200 "reconnect now", for graceful shutdown.
    shutdown_code: int = RECONNECT_NOW

    def __init__(self, gateway: Gateway, engine: PusherEngine) -> None:
        self.gw = gateway
        self.engine = engine

    # ------------------------------------------------------------ WsHandler
    def accept(self, conn: Connection, request: Request) -> None:
        # Judge the request now, answer after the 101 (``on_open``): a refusal must reach
        # pusher-js as a close code, which an HTTP status cannot carry.
        engine = self.engine
        try:
            req = check_connect(request.path, parse_query(request.query), engine.store)
            check_quota(req.app, engine.connection_count(req.app))
        except PusherError as exc:
            conn.session = exc
            return
        conn.session = req.app

    def on_open(self, conn: Connection) -> None:
        pending = conn.session
        if not isinstance(pending, App):
            conn.session = None
            exc = (
                pending
                if isinstance(pending, PusherError)
                else PusherError(PATH_NOT_FOUND, "Path not found")
            )
            connect_log.info(
                "pusher connection refused",
                extra={
                    "fields": {
                        "ip": conn.ip,
                        "conn": conn.id,
                        "code": exc.code,
                        "reason": exc.message,
                    }
                },
            )
            conn.write_control(text_frame(messages.error_from(exc)))
            conn.close(exc.code, exc.message)
            return
        app = pending
        conn.open_anonymous()
        self.engine.opened(conn, app)
        conn.send_text(messages.connection_established(conn.id, app.activity_timeout))
        window = app.require_auth_within
        if window is None and app.first_message == "signin":
            window = self.gw.config.auth_timeout
        if window:
            conn.set_deadline(window)

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        session: Session = conn.session
        app = session.hub.app
        try:
            msg = parse_client_message(data)
        except PusherError as exc:
            if session.user is None and app.first_message == "signin":
                if not self._native_auth(conn, session, data):
                    self.auth_failed(conn, session, "Sign in before anything else")
                return
            conn.send_text(messages.error_from(exc))
            if exc.fatal:
                conn.close(exc.code, exc.message)
            return
        kind = type(msg)
        if kind is Ping:  # the most frequent message: first, and cheap
            conn.send_text(messages.PONG)
            return
        if session.user is None and app.first_message == "signin":
            try:
                check_first_message(app, msg)
            except PusherError as exc:
                self.auth_failed(conn, session, exc.message)
                return
        if kind is ClientEvent:
            self._client_event(conn, session, msg)  # type: ignore[arg-type]
        elif kind is Subscribe:
            self._subscribe(conn, session, msg)  # type: ignore[arg-type]
        elif kind is Unsubscribe:
            self.engine.unsubscribe(conn, session, msg.channel)  # type: ignore[union-attr]
        elif kind is Signin:
            self._signin(conn, session, msg)  # type: ignore[arg-type]
        elif kind is Pong:
            session.pinged = False
        # UnknownEvent: ignored (forward compatible, as pusher-js expects)

    def on_deadline(self, conn: Connection) -> None:
        session = conn.session
        if conn.state is OPEN and isinstance(session, Session) and not session.has_authenticated:
            self.gw.stats.auth_timeouts += 1
            self.auth_failed(conn, session, AUTH_TIMEOUT)

    def on_close(self, conn: Connection, code: int) -> None:
        session = conn.session
        if isinstance(session, Session):
            self.engine.closed(conn, session)

    # ------------------------------------------------------------- messages
    def _subscribe(self, conn: Connection, session: Session, msg: Subscribe) -> None:
        app = session.hub.app
        try:
            grant = authorize_subscription(app, conn.id, msg, user_id=session.user_id)
            self.engine.subscribe(conn, session, grant)
        except SubscriptionError as exc:
            conn.send_text(messages.subscription_error_from(exc))
            if exc.is_auth_failure:
                self.auth_failed(
                    conn,
                    session,
                    exc.message,
                    channel=exc.channel,
                    close=app.auth_failure == "close",
                )
            return
        if grant.kind.requires_auth and conn.state is OPEN:
            conn.clear_deadline()  # require_auth_within is met

    def _signin(self, conn: Connection, session: Session, msg: Signin) -> None:
        try:
            user = authorize_signin(session.hub.app, conn.id, msg)
        except PusherError as exc:
            if exc.code == UNAUTHORIZED:
                self.auth_failed(conn, session, exc.message)  # always closes, as Pusher does
            else:
                conn.send_text(messages.error_from(exc))  # 4302 watchlist too big
            return
        conn.clear_deadline()
        self.gw.stats.auth_ok += 1
        self.engine.signin(conn, session, user)

    def _native_auth(self, conn: Connection, session: Session, data: str | bytes) -> bool:
        """``first_message="signin"`` also takes the native ``{"type":"auth", ...}`` first
        message, checked by the gateway's verifier (the one ``/ws`` uses): one login for
        both protocols. The verified user is signed in as if by ``pusher:signin`` (no
        ``user_info`` beyond the verifier's, no watchlist). False if ``data`` is not such
        a message, or the verifier is the anonymous one (that would let anyone in).

        An async verifier (``http``) answers later; messages sent before the answer are
        judged as unsigned (so a client waits for ``pusher:signin_success``).
        """
        verifier = self.gw.verifier
        if not getattr(verifier, "requires_message", True):
            return False
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(message, dict) or message.get("type") != "auth":
            return False
        ip, port = conn.peer
        info = ConnectionInfo(conn.id, ip, port, path="/app/" + session.hub.app.key)
        try:
            result = verifier.verify(message, info)
        except AuthFailed as exc:
            self.auth_failed(conn, session, exc.reason)
            return True
        except Exception:
            log.exception("verifier failed on a Pusher native auth message")
            self.auth_failed(conn, session, "internal error")
            return True
        if inspect.isawaitable(result):
            self.gw.track(asyncio.ensure_future(self._native_auth_async(conn, session, result)))
        else:
            self._native_signin(conn, session, result)
        return True

    async def _native_auth_async(
        self, conn: Connection, session: Session, pending: Awaitable[Identity]
    ) -> None:
        try:
            identity = await pending
        except AuthFailed as exc:
            if conn.state is OPEN:
                self.auth_failed(conn, session, exc.reason)
            return
        except Exception:
            log.exception("verifier failed on a Pusher native auth message")
            if conn.state is OPEN:
                self.auth_failed(conn, session, "internal error")
            return
        self._native_signin(conn, session, identity)

    def _native_signin(self, conn: Connection, session: Session, identity: object) -> None:
        if conn.state is not OPEN or session.user is not None:
            return  # closed meanwhile, or signed in by pusher:signin meanwhile
        if not isinstance(identity, Identity) or not is_valid_channel_name(identity.user):
            # The id names "#server-to-user-{id}", so it must be a valid name part.
            self.auth_failed(conn, session, "Verifier returned an unusable user id")
            return
        user_info = dict(identity.info) if identity.info is not None else None
        user_data = (
            {"id": identity.user}
            if user_info is None
            else {"id": identity.user, "user_info": user_info}
        )
        user = SignedInUser(identity.user, user_info, (), orjson.dumps(user_data).decode())
        conn.clear_deadline()
        self.gw.stats.auth_ok += 1
        self.engine.signin(conn, session, user)

    def _client_event(self, conn: Connection, session: Session, msg: ClientEvent) -> None:
        app = session.hub.app
        try:
            check_client_event(app, msg, session.kind_of(msg.channel))
        except PusherError as exc:
            conn.send_text(messages.error_from(exc))
            return
        ok, session.tokens, session.last = take(
            session.tokens, session.last, self.engine.now(), app.max_client_events_per_second
        )
        if not ok:
            conn.send_text(messages.error_from(rate_limit_error()))
            return
        self.engine.relay_client_event(conn, session, msg.channel, msg.event, msg.data)

    # -------------------------------------------------------------- refusing
    def auth_failed(
        self,
        conn: Connection,
        session: Session,
        reason: str,
        *,
        channel: str | None = None,
        close: bool = True,
    ) -> None:
        """One log line, one count, one failure charged to the IP; then (``close``)
        ``pusher:error`` 4009 and a close with 4009."""
        gw = self.gw
        ip = conn.ip
        failures = gw.limiter.record_failure(ip)
        gw.stats.auth_failed += 1
        if not close and gw.limiter.retry_after(ip):
            # "error" mode keeps honest mistakes open, not a guessing loop: past the IP's
            # auth_fail_limit this socket is closed like its next upgrades are refused.
            close = True
        log.warning(
            "pusher auth refused",
            extra={
                "fields": {
                    "ip": ip,
                    "conn": conn.id,
                    "app": session.hub.app.id,
                    "channel": channel or "-",
                    "reason": reason,
                    "code": UNAUTHORIZED,
                    "action": "close" if close else "error",
                    "failures": failures,
                }
            },
        )
        if close:
            conn.send_text(messages.error(reason, UNAUTHORIZED))
            conn.close(UNAUTHORIZED, clip_reason(reason))
