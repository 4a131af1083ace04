"""The Pusher protocol v7 WebSocket route: ``/app/{key}?protocol=7``.

One ``PusherHandler`` serves every Pusher socket; per-socket state is the hub's
``Session`` in ``conn.session``. Frames are parsed and judged by the sans-I/O layer
(``protocol.pusher``: messages, authorize, hub); this module only moves bytes and
performs what the hub decided (``LocalDelivery``).

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
  ``{"type":"auth","token":...}`` message counts as a signin too: it goes through the
  gateway's one ``AuthGate`` and verifier, with the same ``ConnectionInfo`` (headers,
  query, path, peer) the verifier gets on ``/ws``, and an async verifier holds the
  socket's later messages until it answers. Such apps get a deadline:
  ``require_auth_within``, else ``auth_timeout``.

Every authentication failure goes through ``AuthGate.refuse``: one ``auth refused`` line
(logger ``uvgate.auth``: ip, conn, route, app, channel, reason, code, action), counted in
``auth_failed`` and charged to the IP, so past ``auth_fail_limit`` the IP's next upgrades
get HTTP 429 before any WebSocket work.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from gateway.auth import AuthGate, Refusal, close_instead
from gateway.connection import OPEN, Connection
from gateway.flow import ENGINE
from gateway.liveness import Heartbeat
from gateway.pusher.delivery import LocalDelivery
from gateway.stats import Stats
from gateway.tasks import TaskGroup
from gateway.verifiers.base import Identity, clip_reason
from protocol.frames import OP_TEXT, encode_frame
from protocol.handshake import Request
from protocol.pusher import activity, messages
from protocol.pusher.apirequest import parse_query
from protocol.pusher.apps import App, AppStore
from protocol.pusher.authorize import (
    SignedInUser,
    SubscriptionGrant,
    authorize_signin,
    authorize_subscription,
    check_first_message,
)
from protocol.pusher.channels import is_valid_channel_name
from protocol.pusher.connect import check_connect
from protocol.pusher.engine import Engine, is_pending
from protocol.pusher.errors import (
    OVER_CAPACITY,
    OVER_QUOTA,
    PATH_NOT_FOUND,
    PONG_NOT_RECEIVED,
    RECONNECT_NOW,
    UNAUTHORIZED,
    PusherError,
    SubscriptionError,
)
from protocol.pusher.hub import PusherHub, Session, Step
from protocol.pusher.messages import (
    ClientEvent,
    Ping,
    Pong,
    Signin,
    Subscribe,
    Unsubscribe,
    parse_client_message,
)
from protocol.pusher.state import Joined

log = logging.getLogger("uvgate.pusher")

AUTH_TIMEOUT = "Authentication timeout"
SWEEP_INTERVAL = 5.0  # seconds between two activity checks of a socket
UNAVAILABLE = "Cluster state unavailable, try again"

T = TypeVar("T")


def text_frame(text: str) -> bytes:
    return encode_frame(OP_TEXT, text.encode())


class PusherHandler:
    # pusher-js asks for no subprotocol.
    subprotocols: Sequence[str] = ()
    # pusher-protocol.md: 4200 "reconnect now", for graceful shutdown.
    shutdown_code: int = RECONNECT_NOW

    def __init__(
        self,
        hub: PusherHub[Connection],
        engine: Engine,
        delivery: LocalDelivery,
        gate: AuthGate,
        store: AppStore,
        *,
        stats: Stats,
        tasks: TaskGroup,
        heartbeat: Heartbeat,
        auth_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.engine = engine
        self.delivery = delivery
        self.gate = gate
        self.store = store
        self.stats = stats
        self.tasks = tasks
        self.heartbeat = heartbeat
        self.auth_timeout = auth_timeout
        self.clock = clock  # monotonic seconds: cache expiry, client-event rate limit
        self.pong_timeout = activity.PONG_TIMEOUT
        self.sweep_interval = SWEEP_INTERVAL
        # Connections with an engine operation in flight: their close waits for it, so
        # the operations of one connection reach the engine in order.
        self._busy: dict[Connection, Any] = {}
        # Per app id, read at scrape time (gateway.pusher.appmetrics).
        self.received: defaultdict[str, int] = defaultdict(int)  # messages from sockets
        self.client_events: defaultdict[str, int] = defaultdict(int)  # relayed client-*

    # -------------------------------------------------------------- engine calls
    def _then(
        self,
        conn: Connection,
        result: Any,
        done: Callable[[Any], None],
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """Go on with ``done(value)`` now, or once the engine answers; meanwhile the
        connection reads nothing (``flow.ENGINE``), so its messages keep their order."""
        if not is_pending(result):
            done(result)
            return
        conn.pause_reading_for(ENGINE)

        async def wait() -> None:
            try:
                value = await result
            except Exception as exc:
                conn.resume_reading_for(ENGINE)
                if failed is not None:
                    failed(exc)
                else:
                    log.warning("engine operation failed: %s", exc)
                return
            conn.resume_reading_for(ENGINE)
            done(value)

        task = self.tasks.spawn(wait())
        self._busy[conn] = task

        def forget(_: object) -> None:
            if self._busy.get(conn) is task:
                del self._busy[conn]

        task.add_done_callback(forget)

    def _background(self, result: object) -> None:
        """An engine operation nobody waits for (the connection is gone)."""
        if is_pending(result):
            self.tasks.spawn(_logged(result))

    # ------------------------------------------------------------ WsHandler
    def accept(self, conn: Connection, request: Request) -> None:
        # Judge the request now, answer after the 101 (``on_open``): a refusal must reach
        # pusher-js as a close code, which an HTTP status cannot carry.
        try:
            req = check_connect(request.path, parse_query(request.query), self.store)
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
            self._refuse_connection(conn, exc)
            return
        app = pending
        # A verifier may still be asked about this socket (a native auth message on a
        # ``first_message="signin"`` app): keep its request (headers, query) until then.
        may_verify = app.first_message == "signin" and self.gate.requires_message
        conn.open_anonymous(keep_request=may_verify)
        conn.session = self.hub.open(app, conn, conn.id, self.clock())

        def counted(count: int) -> None:
            if app.max_connections is not None and count > app.max_connections:
                conn.session = None  # nothing to undo in the hub at close
                self._background(self.engine.disconnect(app, conn.id))
                self._refuse_connection(conn, PusherError(OVER_QUOTA, "Over connection quota"))
                return
            if conn.state is not OPEN:
                return  # closed meanwhile: on_close undoes the count
            conn.send_text(messages.connection_established(conn.id, app.activity_timeout))
            window = app.require_auth_within
            if window is None and app.first_message == "signin":
                window = self.auth_timeout
            if window:
                conn.set_deadline(window)

        def unavailable(exc: Exception) -> None:
            conn.session = None
            self._refuse_connection(conn, PusherError(OVER_CAPACITY, UNAVAILABLE))

        try:
            result = self.engine.connect(app, conn.id)
        except Exception as exc:
            unavailable(exc)
            return
        self._then(conn, result, counted, unavailable)

    def _refuse_connection(self, conn: Connection, exc: PusherError) -> None:
        log.info(
            "pusher connection refused",
            extra={
                "fields": {"ip": conn.ip, "conn": conn.id, "code": exc.code, "reason": exc.message}
            },
        )
        conn.write_control(text_frame(messages.error_from(exc)))
        conn.close(exc.code, exc.message)

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        session: Session[Connection] = conn.session
        app = session.app
        self.received[app.id] += 1
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
            leave = self.hub.unsubscribe(session, msg.channel)  # type: ignore[union-attr]
            if leave is not None:
                self._then(conn, self.engine.leave(app, leave[0], conn.id, leave[1]), _nothing)
        elif kind is Signin:
            self._signin(conn, session, msg)  # type: ignore[arg-type]
        elif kind is Pong:
            session.pinged = False
        # UnknownEvent: ignored (forward compatible, as pusher-js expects)

    def on_deadline(self, conn: Connection) -> None:
        session = conn.session
        if conn.state is OPEN and isinstance(session, Session) and not session.has_authenticated:
            self.stats.auth_timeouts += 1
            self.auth_failed(conn, session, AUTH_TIMEOUT)

    def on_silence(self, conn: Connection, silent: float) -> None:
        """Pusher's activity rule first (pusher:ping, 4201), then the core heartbeat."""
        session = conn.session
        if isinstance(session, Session):
            ping_after, close_after = activity.limits(
                session.app.activity_timeout,
                self.pong_timeout,
                idle_timeout=self.heartbeat.idle_timeout if self.heartbeat.ping_interval else 0.0,
                period=self.liveness_period(),
            )
            action = activity.check(silent, session.pinged, ping_after, close_after)
            if action is activity.Activity.ANSWERED:
                session.pinged = False
            elif action is activity.Activity.PING:
                session.pinged = True
                conn.send_text(messages.PING)
            elif action is activity.Activity.CLOSE:
                conn.send_text(messages.error(activity.NO_PONG, PONG_NOT_RECEIVED))
                conn.close(PONG_NOT_RECEIVED, activity.NO_PONG)
                return
        self.heartbeat.check(conn, silent)

    def liveness_period(self) -> float:
        """How often ``on_silence`` must run for the activity rule."""
        heartbeat = self.heartbeat
        interval = self.sweep_interval
        if heartbeat.ping_interval > 0 and heartbeat.idle_timeout > 0:
            interval = min(interval, heartbeat.idle_timeout / 4)
        return max(interval, 0.05)

    def on_close(self, conn: Connection, code: int) -> None:
        session = conn.session
        if not isinstance(session, Session):
            return
        # The session names its connection (the hub's handle): let go of it here, so the
        # pair is no reference cycle and both are freed when the socket goes, not by a
        # pass of the cyclic collector (gateway/collector.py). Nothing reads it after this:
        # a closing connection gets no more messages and has left the registry.
        conn.session = None
        busy = self._busy.get(conn)
        if busy is None:
            self._closed(session)
        else:
            # An engine operation of this connection is in flight: undo after it.
            busy.add_done_callback(lambda _: self._closed(session))

    def _closed(self, session: Session[Connection]) -> None:
        """Undo everything the connection holds, here (hub) and in the engine."""
        closing = self.hub.closing(session)
        app, socket_id = session.app, session.socket_id
        engine = self.engine
        for channel, user_id in closing.leaves:
            self._background(engine.leave(app, channel, socket_id, user_id))
        if closing.user is not None:
            user = closing.user
            self._background(engine.sign_out(app, user.id, socket_id, user.watchlist))
        self._background(engine.disconnect(app, socket_id))

    # ------------------------------------------------------------- messages
    def _client_event(
        self, conn: Connection, session: Session[Connection], msg: ClientEvent
    ) -> None:
        try:
            delivery, hook = self.hub.client_event(session, msg, self.clock())
        except PusherError as exc:
            conn.send_text(messages.error_from(exc))
            return
        self.client_events[session.app.id] += 1
        # No wait for the engine: a client event is fire and forget, as in Pusher.
        self._background(self.engine.publish(delivery))
        if hook is not None:
            self.engine.webhook(session.app, hook)

    def _subscribe(self, conn: Connection, session: Session[Connection], msg: Subscribe) -> None:
        app = session.app
        try:
            grant = authorize_subscription(app, conn.id, msg, user_id=session.user_id)
            step, replies = self.hub.subscribing(session, grant)
        except SubscriptionError as exc:
            self._subscription_failed(conn, session, exc)
            return
        if step is Step.DONE:
            for reply in replies:
                conn.send_text(reply)
            self._auth_met(conn, grant)
            return
        channel = grant.channel
        if step is Step.ROSTER:
            self._then(
                conn,
                self.engine.members(app, channel),
                lambda members: _send(conn, messages.subscription_succeeded(channel, members)),
            )
            return

        def joined(result: Joined) -> None:
            self.delivery.perform(self.hub.subscribed(session, grant, result), app, conn)
            self._auth_met(conn, grant)

        def failed(exc: Exception) -> None:
            if not isinstance(exc, SubscriptionError):
                log.warning("subscribe to %s failed: %s", channel, exc)
                exc = SubscriptionError(
                    channel, OVER_CAPACITY, UNAVAILABLE, type="ServiceUnavailable", status=503
                )
            self._subscription_failed(conn, session, exc)

        try:
            result = self.engine.join(app, channel, conn.id, grant.member, self.clock(), joined)
        except SubscriptionError as exc:
            failed(exc)
            return
        self._then(conn, result, _nothing, failed)

    def _auth_met(self, conn: Connection, grant: SubscriptionGrant) -> None:
        if grant.kind.requires_auth and conn.state is OPEN:
            conn.clear_deadline()  # require_auth_within is met

    def _subscription_failed(
        self, conn: Connection, session: Session[Connection], exc: SubscriptionError
    ) -> None:
        conn.send_text(messages.subscription_error_from(exc))
        if exc.is_auth_failure:
            self.auth_failed(
                conn,
                session,
                exc.message,
                channel=exc.channel,
                close=session.app.auth_failure == "close",
            )

    def _signin(self, conn: Connection, session: Session[Connection], msg: Signin) -> None:
        try:
            user = authorize_signin(session.app, conn.id, msg)
        except PusherError as exc:
            if exc.code == UNAUTHORIZED:
                self.auth_failed(conn, session, exc.message)  # always closes, as Pusher does
            else:
                conn.send_text(messages.error_from(exc))  # 4302 watchlist too big
            return
        self._signed_in(conn, session, user)

    def _signed_in(
        self, conn: Connection, session: Session[Connection], user: SignedInUser
    ) -> None:
        conn.clear_deadline()
        conn.request = None  # no verifier will be asked about it any more
        self.stats.auth_ok += 1
        app, engine = session.app, self.engine
        previous = self.hub.signing_in(session, user)
        if previous is not None:
            self._background(engine.sign_out(app, previous.id, conn.id, previous.watchlist))
        watchlist = list(dict.fromkeys(user.watchlist))

        def online(ids: list[str]) -> None:
            self.delivery.perform(self.hub.signed_in(session, user, ids), app, conn)

        self._then(conn, engine.sign_in(app, user.id, conn.id, watchlist), online)

    def _native_auth(
        self, conn: Connection, session: Session[Connection], data: str | bytes
    ) -> bool:
        """``first_message="signin"`` also takes the native ``{"type":"auth", ...}`` first
        message, judged by the gateway's verifier through the one ``AuthGate``: one login
        for both protocols. The verified user is signed in as if by ``pusher:signin`` (no
        ``user_info`` beyond the verifier's, no watchlist). False if ``data`` is not such
        a message, or the verifier is the anonymous one (that would let anyone in).
        """
        if not self.gate.requires_message:
            return False
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(message, dict) or message.get("type") != "auth":
            return False
        self.gate.verify(conn, message, self._native_signin, self._native_refused)
        return True

    def _native_signin(self, conn: Connection, identity: Identity) -> None:
        session = conn.session
        if conn.state is not OPEN or not isinstance(session, Session) or session.user is not None:
            return  # closed meanwhile, or signed in by pusher:signin meanwhile
        if not is_valid_channel_name(identity.user):
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
        self._signed_in(conn, session, user)

    def _native_refused(self, conn: Connection, refusal: Refusal) -> None:
        session = conn.session
        if conn.state is OPEN and isinstance(session, Session):
            self.auth_failed(conn, session, refusal.reason, code=refusal.code, verifier=True)

    # -------------------------------------------------------------- refusing
    def auth_failed(
        self,
        conn: Connection,
        session: Session[Connection],
        reason: str,
        *,
        channel: str | None = None,
        close: bool = True,
        code: int = UNAUTHORIZED,
        verifier: bool = False,
    ) -> None:
        """Through the gate (one log line, one count, one failure charged to the IP); then,
        when closing, ``pusher:error`` 4009 and a close with 4009.

        ``code``: what the verifier said (4503 backend down is not charged to the IP); the
        socket is closed with 4009 whatever it is, the code pusher-js will not retry.
        """
        fields: dict[str, Any] = {"app": session.app.id, "channel": channel or "-"}
        if verifier:
            fields["verifier"] = self.gate.verifier_name
        refusal = self.gate.refuse(
            conn,
            Refusal(code, reason, close),
            route="pusher",
            # "error" mode keeps honest mistakes open, not a guessing loop: past the IP's
            # auth_fail_limit this socket is closed like its next upgrades are refused.
            at_limit=close_instead,
            **fields,
        )
        if refusal.close:
            conn.send_text(messages.error(reason, UNAUTHORIZED))
            conn.close(UNAUTHORIZED, clip_reason(reason))


def _nothing(value: object) -> None:
    return None


async def _logged(result: Any) -> None:
    try:
        await result
    except Exception as exc:
        log.warning("background engine operation failed: %s", exc)


def _send(conn: Connection, text: str) -> None:
    conn.send_text(text)
