# cython: nonecheck=True
"""One TCP connection: the ``asyncio.Protocol`` callbacks and message dispatch.

Everything on the hot path is a callback: ``data_received`` feeds the frame parser
and dispatches synchronously to the route handler; no task per message. The object
uses ``__slots__`` and frees its handshake buffer and request once they are not
needed, because idle connections are what a gateway holds by the hundred thousand.

No exception leaves a protocol callback: one that escapes a parser or a handler is
answered (HTTP 400 before the upgrade, close 1007/1011 after) and logged once
(``gateway.errorlog``), instead of reaching the event loop's "Fatal error on transport".
"""

from __future__ import annotations

import logging
from sys import intern
from typing import TYPE_CHECKING, Any

from gateway.connection.base import SEEN
from gateway.connection.http1 import Http1
from gateway.connstate import (
    AUTHENTICATING,
    AWAITING_AUTH,
    CLOSED,
    CLOSING,
    HANDSHAKE,
    HTTP,
    OPEN,
    WEBSOCKET_STATES,
)
from gateway.errorlog import unexpected
from gateway.fanout import close_batch, open_batch
from gateway.flow import AUTH
from protocol import closecodes
from protocol.errors import FrameError
from protocol.frames import (
    BinaryMessage,
    CloseFrame,
    Ping,
    Pong,
    TextMessage,
    encode_close,
    encode_pong,
)
from protocol.handshake import http_response

if TYPE_CHECKING:
    import asyncio

    from gateway.verifiers.base import Identity

log = logging.getLogger("uvgate.connection")


class Connection(Http1):
    # No __init__ of its own: ConnectionBase's runs directly (a super() call less
    # per connection).
    __slots__ = ()

    # ------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport; it has its API.
        self.transport = transport
        ctx = self.ctx
        try:
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple) and peer:
                self.ip = intern(peer[0])
            ctx.timers.pending.add(self)
            ctx.stats.tcp_accepted += 1
            self.last_seen = SEEN
            # Also while shutting down: plain HTTP is still answered (/ready says 503,
            # the Pusher API publishes); upgrades get 503 (``Upgrade._upgrade``).
            self.transport.set_write_buffer_limits(high=ctx.limits.write_high_water)
            self.set_deadline(ctx.limits.handshake_timeout)
        except Exception as exc:
            unexpected(exc, self, "connection_made")
            self.abort(closecodes.INTERNAL_ERROR)

    def data_received(self, data: bytes) -> None:
        try:
            # Seen since the last liveness sweep (which turns the mark into a time):
            # a constant store, the cheapest thing to do once per read.
            self.last_seen = SEEN
            state = self.state
            if state is OPEN or state is AWAITING_AUTH:
                # The hot path: one whole message in one read, straight to its consumer,
                # with no event object in between (the auth message of every native
                # connection too: nothing can be held before it).
                try:
                    payload = self.parser.feed_message(data)  # type: ignore[union-attr]
                except FrameError as exc:
                    self.ctx.stats.ws_received_bytes += len(data)
                    self._fail(exc.close_code, exc.reason)
                    return
                if payload is not None:
                    stats = self.ctx.stats
                    stats.ws_received_bytes += len(data)
                    stats.ws_messages_received += 1
                    try:
                        self.message_cb(self, payload)
                    except Exception as exc:
                        unexpected(exc, self, "message handler")
                        self.close(closecodes.INTERNAL_ERROR, "internal error")
                    return
            if state is OPEN or state is AWAITING_AUTH or state is CLOSING:
                # Frames (inline rather than a method: the auth message and the close
                # frame of every connection come this way).
                # The messages are counted where they are handed on.
                self.ctx.stats.ws_received_bytes += len(data)
                try:
                    events = self.parser.feed(data, tried_message=state is not CLOSING)  # type: ignore[union-attr]
                except FrameError as exc:
                    if exc.events:
                        # Frames before the violation were valid: handle them first.
                        self._dispatch(list(exc.events))
                    self._fail(exc.close_code, exc.reason)
                    return
                if not events:
                    return
                if len(events) == 1:
                    event = events[0]
                    kind = type(event)
                    if (kind is TextMessage or kind is BinaryMessage) and state is OPEN:
                        # One message in one read, straight to its consumer.
                        self.ctx.stats.ws_messages_received += 1
                        try:
                            self.message_cb(self, event.data)  # type: ignore[union-attr]
                        except Exception as exc:
                            unexpected(exc, self, "message handler")
                            self.close(closecodes.INTERNAL_ERROR, "internal error")
                        return
                    self._dispatch(events)
                    return
                # Several messages in one read: this connection's replies and the
                # fan-outs they cause are written once per peer, at the end.
                self.cork = []
                ctx = self.ctx
                batch = open_batch(ctx)
                try:
                    self._dispatch(events)
                finally:
                    close_batch(ctx, batch)
                    self._flush()
            elif state is HANDSHAKE or state is HTTP:
                self._receive_http(data)
            # AUTHENTICATING: reading is paused; CLOSED: nothing more to do.
        except Exception as exc:
            self._internal_error(exc, "data_received")

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        # Runs once per transport, whatever state we closed it from: every index
        # the connection may sit in is cleaned here, so no close path can leak.
        try:
            if self.state in WEBSOCKET_STATES:
                self._leave_open(closecodes.ABNORMAL)
            if self.state is not CLOSED:
                self._move(CLOSED)
            self.clear_deadline()
        except Exception as error:
            unexpected(error, self, "connection_lost")
            self.state = CLOSED
        ctx = self.ctx
        ctx.timers.pending.discard(self)
        ctx.timers.closing.discard(self)
        ctx.registry.remove(self)
        ctx.stats.tcp_closed += 1
        self.buffer = None
        self.parser = None
        self.request = None
        self.held = None

    def _internal_error(self, exc: Exception, where: str) -> None:
        """An exception escaped our own code: answer the peer, log one line, never raise."""
        unexpected(exc, self, where)
        try:
            state = self.state
            if state is HANDSHAKE or state is HTTP:
                self._reply(http_response(400, b"bad request\n"), close=True)
            elif state in WEBSOCKET_STATES:
                code = (
                    closecodes.INVALID_DATA
                    if isinstance(exc, UnicodeError)
                    else closecodes.INTERNAL_ERROR
                )
                self._fail(code, "internal error" if code == closecodes.INTERNAL_ERROR else "")
            elif state is CLOSING:
                self._close_transport()
        except Exception as again:
            unexpected(again, self, "answering an error")
            if self.transport is not None:
                self.transport.abort()

    # ------------------------------------------------------------- messages
    def _dispatch(self, events: list[Any]) -> None:
        for i, event in enumerate(events):
            if self.state is CLOSED:
                return
            if self.paused & AUTH:
                # An async verifier is judging an earlier message: keep the rest, in
                # order, for after its answer (``release_held``).
                self.held = list(events[i:])
                return
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                self.ctx.stats.ws_messages_received += 1
                if self.state is CLOSING:
                    continue  # RFC 6455 5.5.1: data after our close is discarded
                try:
                    self.message_cb(self, event.data)
                except Exception as exc:
                    unexpected(exc, self, "message handler")
                    self.close(closecodes.INTERNAL_ERROR, "internal error")
            elif kind is Ping:
                if self.state is not CLOSING:
                    self._write(encode_pong(event.payload))
            elif kind is Pong:
                self.pinged = False
            elif kind is CloseFrame:
                self._on_peer_close(event)
                return

    def _on_peer_close(self, frame: CloseFrame) -> None:
        if self.state is CLOSING:
            # Our close was answered: the server closes TCP first (RFC 6455 7.1.1).
            self._close_transport()
            return
        code = frame.code
        # RFC 6455 5.5.1: answer with the same code (an empty close if the peer sent none).
        self._write(encode_close(code))
        self._leave_open(code)
        self._close_transport()

    # ----------------------------------------------------------------- auth
    def hold_for_auth(self) -> None:
        """An async verifier runs: stop reading, keep what already arrived for later.

        Native connections move to AUTHENTICATING (no message reaches the app before
        the answer); an open connection (Pusher) stays open but reads nothing more.
        """
        if self.state is AWAITING_AUTH:
            self._move(AUTHENTICATING)
        self.pause_reading_for(AUTH)

    def release_held(self) -> None:
        """After an async verifier: read again, deliver what arrived meanwhile, in order."""
        held, self.held = self.held, None
        self.resume_reading_for(AUTH)
        if held and self.state is OPEN:
            self.cork = []
            ctx = self.ctx
            batch = open_batch(ctx)
            try:
                self._dispatch(held)
            finally:
                close_batch(ctx, batch)
                self._flush()

    def authenticated(self, identity: Identity) -> None:
        """A verifier accepted the peer: the connection opens, registered with its user."""
        if self.state is not AWAITING_AUTH and self.state is not AUTHENTICATING:
            return
        # _open(keep_request=False), inlined: this runs once per connection.
        self._move(OPEN)
        self.clear_deadline()
        self.request = None  # no longer needed: free it
        self.ctx.timers.pending.discard(self)
        self.user = identity.user
        self.info = identity.info
        registry = self.ctx.registry
        registry.add(self)
        for group in identity.groups:
            registry.join(self, group)

    def open_anonymous(self, *, keep_request: bool = False) -> None:
        """Open without an identity: the route authenticates per action, not per socket.

        Pusher sockets are usable at once (public channels need no auth), so they must be
        OPEN (writes, liveness, shutdown) and in the registry by id, but with no user: a
        Pusher signin is scoped to one app and is indexed by the Pusher hub, not in the
        registry's user index (user ids of different apps would collide there).
        ``keep_request``: a verifier may still be asked about this connection later.
        """
        if self.state is not AWAITING_AUTH:
            return
        self._open(keep_request=keep_request)
        self.ctx.registry.add(self)

    def _open(self, *, keep_request: bool) -> None:
        self._move(OPEN)
        self.clear_deadline()
        if not keep_request:
            self.request = None  # no longer needed: free it
        self.ctx.timers.pending.discard(self)
