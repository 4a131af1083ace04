"""One TCP connection: an ``asyncio.Protocol`` with an explicit state machine.

    HANDSHAKE --(upgrade)--> AWAITING_AUTH --(auth)--> OPEN --> CLOSING --> CLOSED
        |                         |  ^                  ^
        |                         v  | (async verifier) |
        +--(plain HTTP)--> HTTP   AUTHENTICATING --------+

Everything on the hot path is a callback: ``data_received`` feeds the frame parser
and dispatches synchronously to the route handler; no task per message. The object
uses ``__slots__`` and frees its handshake buffer and request once they are not
needed, because idle connections are what a gateway holds by the hundred thousand.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Mapping
from sys import intern
from typing import TYPE_CHECKING, Any

from gateway.http import HttpResponse
from protocol import closecodes
from protocol.codecs import JSON, Codec, frame_message
from protocol.errors import FrameError, HandshakeError
from protocol.frames import (
    OP_BINARY,
    OP_TEXT,
    BinaryMessage,
    CloseFrame,
    FrameParser,
    Ping,
    Pong,
    TextMessage,
    encode_binary,
    encode_close,
    encode_frame,
    encode_ping,
    encode_pong,
    encode_text,
)
from protocol.handshake import (
    Request,
    accept_response,
    check_upgrade,
    http_response,
    is_upgrade,
    parse_request,
    reject_response,
)

if TYPE_CHECKING:
    from gateway.routes import WsHandler
    from gateway.server import Gateway
    from gateway.verifiers.base import Identity
    from protocol.deflate import Deflater

log = logging.getLogger("uvgate.connection")


class State(enum.IntEnum):
    HANDSHAKE = 0
    HTTP = 1
    AWAITING_AUTH = 2
    AUTHENTICATING = 3
    OPEN = 4
    CLOSING = 5
    CLOSED = 6


# Module-level aliases: a global load is cheaper than an enum attribute lookup.
HANDSHAKE, HTTP, AWAITING_AUTH, AUTHENTICATING, OPEN, CLOSING, CLOSED = State

# The only legal moves; anything else is a bug and raises.
_TRANSITIONS: dict[State, frozenset[State]] = {
    HANDSHAKE: frozenset({HTTP, AWAITING_AUTH, CLOSED}),
    HTTP: frozenset({HANDSHAKE, CLOSED}),
    AWAITING_AUTH: frozenset({AUTHENTICATING, OPEN, CLOSING, CLOSED}),
    AUTHENTICATING: frozenset({OPEN, CLOSING, CLOSED}),
    OPEN: frozenset({CLOSING, CLOSED}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}

_WEBSOCKET_STATES = (AWAITING_AUTH, AUTHENTICATING, OPEN)


class Connection(asyncio.Protocol):
    __slots__ = (
        "buffer",
        "close_code",
        "codec",
        "cork",
        "data",
        "deadline_slot",
        "deflater",
        "expires",
        "groups",
        "gw",
        "handler",
        "held",
        "id",
        "info",
        "ip",
        "last_seen",
        "message_cb",
        "parser",
        "pinged",
        "request",
        "session",
        "state",
        "subprotocol",
        "transport",
        "user",
        "write_paused",
    )

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.state = HANDSHAKE
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.id: str = ""
        # Only the IP is kept, interned: connections from one address (NAT, a
        # proxy, loopback) share one string instead of each holding a tuple,
        # a str and an int (~140 bytes). The port is read back when needed.
        self.ip = ""
        self.buffer: bytearray | None = None
        self.request: Request | None = None
        self.parser: FrameParser | None = None
        self.handler: WsHandler | None = None
        # Where complete messages go: the route handler, or straight to the app
        # once a handler hands the connection over (one call less per message).
        self.message_cb: Any = None
        # While not None, frames queue here and leave in one write at the end of
        # data_received: N pipelined requests cost one send() instead of N.
        self.cork: list[bytes] | None = None
        # Messages that arrived behind the auth message while an async verifier runs.
        self.held: list[Any] | None = None
        self.codec: Codec = JSON
        self.subprotocol: str | None = None
        self.user: str | None = None
        # The verifier's Identity is not kept (one object less per connection):
        # its user and info live here, ``identity`` rebuilds it on demand.
        self.info: Mapping[str, Any] | None = None
        self.groups: set[str] | None = None
        self.data: dict[str, Any] | None = None  # free for applications (Workerman style)
        self.session: Any = None  # free for the route handler (e.g. Pusher state)
        self.last_seen = 0.0
        self.deadline_slot = 0
        # Deadline while handshaking, authenticating or closing (0.0 = none):
        # those connections sit in small sets the gateway sweeps, so the common
        # short-lived connection never touches the timer wheel.
        self.expires = 0.0
        self.write_paused = False
        self.pinged = False
        self.close_code: int | None = None
        # permessage-deflate compressor for this connection's own sends (RFC 7692).
        self.deflater: Deflater | None = None

    # ------------------------------------------------------------------ state
    def _move(self, new: State) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal transition {self.state.name} -> {new.name}")
        self.state = new

    @property
    def remote_ip(self) -> str:
        return self.ip

    @property
    def peer(self) -> tuple[str, int]:
        """(ip, port) of the peer; the port is ``0`` once the socket is gone."""
        port = 0
        if self.state is not CLOSED:
            info = self.transport.get_extra_info("peername")
            if isinstance(info, tuple) and len(info) >= 2:
                port = info[1]
        return (self.ip, port)

    @property
    def identity(self) -> Identity | None:
        """Who authenticated this connection (None before authentication)."""
        if self.user is None:
            return None
        from gateway.verifiers.base import Identity

        return Identity(self.user, self.info, tuple(sorted(self.groups or ())))

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def set_deadline(self, delay: float) -> None:
        """Call ``on_deadline`` in ``delay`` seconds (one deadline at a time)."""
        state = self.state
        if state is OPEN:
            self.gw.wheel.add(self, self.gw.now + delay)
        else:
            # Pending or closing: swept from gw.pending / gw.closing.
            self.expires = self.gw.now + delay

    def clear_deadline(self) -> None:
        self.expires = 0.0
        if self.deadline_slot:
            self.gw.wheel.discard(self)

    # ------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport; it has its API.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.ip = intern(peer[0])
        gw = self.gw
        gw.pending.add(self)
        gw.stats.tcp_accepted += 1
        self.last_seen = gw.now
        if not gw.accepting:
            self.transport.abort()
            return
        self.transport.set_write_buffer_limits(high=gw.write_high_water)
        self.set_deadline(gw.config.handshake_timeout)

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.gw.now
        state = self.state
        if state is OPEN:
            # The hot path: one whole message in one read, straight to its consumer,
            # with no event object in between.
            try:
                payload = self.parser.feed_message(data)  # type: ignore[union-attr]
            except FrameError as exc:
                self._fail(exc.close_code, exc.reason)
                return
            if payload is not None:
                try:
                    self.message_cb(self, payload)
                except Exception:
                    log.exception("handler failed on a message (conn %s)", self.id)
                    self.close(closecodes.INTERNAL_ERROR, "internal error")
                return
        if state in (OPEN, AWAITING_AUTH, CLOSING):
            try:
                events = self.parser.feed(data, tried_message=state is OPEN)  # type: ignore[union-attr]
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
                    # The hot path: one message in one read, straight to its consumer.
                    try:
                        self.message_cb(self, event.data)  # type: ignore[union-attr]
                    except Exception:
                        log.exception("handler failed on a message (conn %s)", self.id)
                        self.close(closecodes.INTERNAL_ERROR, "internal error")
                    return
                self._dispatch(events)
                return
            self.cork = []
            try:
                self._dispatch(events)
            finally:
                self._flush()
        elif state in (HANDSHAKE, HTTP):
            self._receive_http(data)
        # AUTHENTICATING: reading is paused; CLOSED: nothing more to do.

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def pause_writing(self) -> None:
        # Flow control: the peer reads slower than we write. Stop reading from it,
        # so an echo-style client cannot make us buffer without bound.
        self.write_paused = True
        if self.state != CLOSED:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.state != CLOSED and self.state != AUTHENTICATING:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # Runs once per transport, whatever state we closed it from: every index
        # the connection may sit in is cleaned here, so no close path can leak.
        state = self.state
        if state in _WEBSOCKET_STATES:
            self._leave_open(closecodes.ABNORMAL)
        if self.state != CLOSED:
            self._move(CLOSED)
        self.clear_deadline()
        gw = self.gw
        gw.pending.discard(self)
        gw.closing.discard(self)
        gw.registry.remove(self)
        gw.stats.tcp_closed += 1
        self.buffer = None
        self.parser = None
        self.request = None
        self.held = None

    # -------------------------------------------------------------- handshake
    def _receive_http(self, data: bytes) -> None:
        buf = self.buffer
        if buf is None:
            if self.state == HANDSHAKE and self.request is None:
                # Fast path: the whole request in one segment (the usual case).
                try:
                    parsed = parse_request(data)
                except HandshakeError as exc:
                    self._reject(exc)
                    return
                if parsed is not None:
                    request, used = parsed
                    self._on_request(request, data[used:])
                    return
            buf = self.buffer = bytearray()
        buf += data
        self._process_buffer()

    def _process_buffer(self) -> None:
        buf = self.buffer
        if buf is None or self.state not in (HANDSHAKE, HTTP):
            return
        request = self.request
        if request is not None:
            # Waiting for an HTTP request body.
            if len(buf) < request.content_length:
                return
            body = bytes(buf[: request.content_length])
            del buf[: request.content_length]
            self._serve_http(request, body)
            return
        try:
            parsed = parse_request(buf)
        except HandshakeError as exc:
            self._reject(exc)
            return
        if parsed is None:
            return
        request, used = parsed
        rest = bytes(buf[used:])
        self.buffer = None
        self._on_request(request, rest)

    def _on_request(self, request: Request, rest: bytes) -> None:
        gw = self.gw
        if is_upgrade(request):
            self._upgrade(request, rest)
            return
        handler = gw.http_route(request.path)
        if handler is None:
            self._reply(http_response(404, b"not found\n"), close=True)
            return
        if request.content_length > gw.config.max_http_body:
            self._reply(http_response(413, b"request body too large\n"), close=True)
            return
        if self.state == HANDSHAKE:
            self._move(HTTP)
        self.request = request
        if rest or request.content_length:
            self.buffer = bytearray(rest)
            self._process_buffer()
        else:
            self._serve_http(request, b"")

    def _upgrade(self, request: Request, rest: bytes) -> None:
        gw = self.gw
        if self.state != HANDSHAKE:
            self._reply(http_response(400, b"upgrade after HTTP requests\n"), close=True)
            return
        retry = gw.limiter.retry_after(self.ip)
        if retry:
            gw.stats.rate_limited += 1
            self._reject(
                HandshakeError(429, "too many failed attempts", (("Retry-After", str(retry)),))
            )
            return
        handler = gw.ws_route(request.path)
        if handler is None:
            self._reject(HandshakeError(404, "unknown path"))
            return
        if len(gw.registry) + len(gw.pending) > gw.config.max_connections:
            gw.stats.over_capacity += 1
            self._reject(HandshakeError(503, "over capacity", (("Retry-After", "5"),)))
            return
        try:
            upgrade = check_upgrade(
                request,
                subprotocols=handler.subprotocols,
                allowed_origins=gw.allowed_origins,
                deflate=gw.config.deflate,
            )
            self.id = gw.ids.new()
            self.request = request
            self.handler = handler
            self.subprotocol = upgrade.subprotocol
            handler.accept(self, request)
        except HandshakeError as exc:
            self._reject(exc)
            return
        inflater = None
        if upgrade.deflate is not None:
            from protocol.deflate import Deflater, Inflater

            inflater = Inflater(upgrade.deflate, gw.config.max_message_size)
            self.deflater = Deflater(upgrade.deflate)
        self.parser = FrameParser(max_message_size=gw.config.max_message_size, deflate=inflater)
        self.message_cb = handler.on_message
        self.transport.write(accept_response(upgrade))
        self.clear_deadline()
        gw.stats.ws_opened += 1
        self._move(AWAITING_AUTH)
        self._call(handler.on_open, self)
        if rest and self.state in _WEBSOCKET_STATES:
            self.data_received(rest)

    def _reject(self, exc: HandshakeError) -> None:
        self.gw.stats.handshake_rejected += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handshake refused ip=%s status=%s reason=%s", self.ip, exc.status, exc.reason
            )
        self._reply(reject_response(exc), close=True)

    def _reply(self, raw: bytes, *, close: bool) -> None:
        if self.state == CLOSED:
            return
        self.transport.write(raw)
        if close:
            if self.state in (HANDSHAKE, HTTP):
                self._move(CLOSED)
            self.transport.close()

    # ------------------------------------------------------------------ HTTP
    def _serve_http(self, request: Request, body: bytes) -> None:
        handler = self.gw.http_route(request.path)
        if handler is None:  # routes cannot vanish, but stay safe
            self._reply(http_response(404, b"not found\n"), close=True)
            return
        self.clear_deadline()
        try:
            result = handler(request, body, self)
        except Exception:
            log.exception("HTTP handler failed for %s %s", request.method, request.path)
            result = HttpResponse.text(500, "internal error")
        if type(result) is not HttpResponse and inspect.isawaitable(result):
            self.transport.pause_reading()
            task = asyncio.ensure_future(result)
            self.gw.track(task)
            task.add_done_callback(lambda t: self._http_done(request, t))
        else:
            self._send_http(request, result)

    def _http_done(self, request: Request, task: asyncio.Future[HttpResponse]) -> None:
        if self.state == CLOSED:
            return
        if task.cancelled():
            self.transport.close()
            return
        exc = task.exception()
        if exc is not None:
            log.error("HTTP handler failed for %s %s", request.method, request.path, exc_info=exc)
            response = HttpResponse.text(500, "internal error")
        else:
            response = task.result()
        self.transport.resume_reading()
        self._send_http(request, response)

    def _send_http(self, request: Request, response: HttpResponse) -> None:
        keep = request.keep_alive and self.gw.accepting
        raw = http_response(
            response.status,
            b"" if request.method == "HEAD" else response.body,
            content_type=response.content_type,
            headers=response.headers,
            keep_alive=keep,
        )
        if not keep:
            self._reply(raw, close=True)
            return
        self.transport.write(raw)
        # Keep-alive: back to waiting for the next request (possibly pipelined).
        self.request = None
        self._move(HANDSHAKE)
        self.set_deadline(self.gw.config.handshake_timeout)
        if self.buffer:
            self._process_buffer()
        else:
            self.buffer = None

    # ------------------------------------------------------------- messages
    def _dispatch(self, events: list[Any]) -> None:
        handler = self.handler
        assert handler is not None
        for i, event in enumerate(events):
            if self.state == CLOSED:
                return
            if self.state == AUTHENTICATING:
                # An async verifier took over: keep the rest for after its answer.
                self.held = list(events[i:])
                return
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                if self.state == CLOSING:
                    continue  # RFC 6455 5.5.1: data after our close is discarded
                try:
                    self.message_cb(self, event.data)
                except Exception:
                    log.exception("handler failed on a message (conn %s)", self.id)
                    self.close(closecodes.INTERNAL_ERROR, "internal error")
            elif kind is Ping:
                if self.state != CLOSING:
                    self._write(encode_pong(event.payload))
            elif kind is Pong:
                self.pinged = False
            elif kind is CloseFrame:
                self._on_peer_close(event)
                return

    def _on_peer_close(self, frame: CloseFrame) -> None:
        if self.state == CLOSING:
            # Our close was answered: the server closes TCP first (RFC 6455 7.1.1).
            self._close_transport()
            return
        code = frame.code
        # RFC 6455 5.5.1: answer with the same code (an empty close if the peer sent none).
        self._write(encode_close(code))
        self._leave_open(code)
        self._close_transport()

    # ----------------------------------------------------------- write path
    def _write(self, data: bytes) -> None:
        cork = self.cork
        if cork is None:
            self.transport.write(data)
        else:
            cork.append(data)

    def _flush(self) -> None:
        cork = self.cork
        if cork is not None:
            self.cork = None
            if cork and self.state is not CLOSED:
                self.transport.write(cork[0] if len(cork) == 1 else b"".join(cork))

    def write_frame(self, frame: bytes) -> bool:
        """Write an already framed message; False if the connection cannot take it."""
        if self.state is not OPEN:
            return False
        if self.write_paused and (
            # Only here, when the peer has already fallen behind, do we pay for
            # asking the transport how much is queued.
            self.transport.get_write_buffer_size() + len(frame) > self.gw.config.max_send_buffer
        ):
            self.gw.stats.slow_consumers += 1
            # Queue nothing more but the close frame: a peer that catches up
            # within close_timeout learns why (4413); one that does not is
            # aborted by the closing sweep, so the buffer stops growing here.
            self.close(closecodes.SLOW_CONSUMER, "slow consumer")
            return False
        cork = self.cork  # _write, inlined: this runs once per message sent
        if cork is None:
            self.transport.write(frame)
        else:
            cork.append(frame)
        return True

    def send(self, message: Any) -> bool:
        """Encode ``message`` with this connection's codec (JSON or MessagePack) and send it."""
        if self.deflater is not None:
            return self._send_compressed(self.codec.opcode, self.codec.encode(message))
        return self.write_frame(frame_message(self.codec, message))

    def send_text(self, text: str) -> bool:
        if self.deflater is not None:
            return self._send_compressed(OP_TEXT, text.encode())
        return self.write_frame(encode_text(text))

    def send_bytes(self, data: bytes) -> bool:
        if self.deflater is not None:
            return self._send_compressed(OP_BINARY, data)
        return self.write_frame(encode_binary(data))

    def send_raw(self, data: str | bytes) -> bool:
        """Send a text message for ``str``, a binary one for ``bytes`` (what echo needs)."""
        if self.deflater is None:
            if type(data) is str:
                return self.write_frame(encode_text(data))
            return self.write_frame(encode_binary(data))  # type: ignore[arg-type]
        if type(data) is str:
            return self._send_compressed(OP_TEXT, data.encode())
        return self._send_compressed(OP_BINARY, data)  # type: ignore[arg-type]

    def _send_compressed(self, opcode: int, payload: bytes) -> bool:
        """One message compressed with this connection's deflater, RSV1 set (RFC 7692 6.1).

        Only per-connection sends are compressed; broadcasts are framed once for every
        subscriber and go out uncompressed, which RFC 7692 6 allows per message.
        """
        if self.state != OPEN:
            # Compress nothing that is never sent: with context takeover the peer's
            # LZ77 window would no longer match ours (RFC 7692 7.2.3).
            return False
        frame = encode_frame(opcode, self.deflater.compress(payload), rsv1=True)  # type: ignore[union-attr]
        return self.write_frame(frame)

    def write_control(self, frame: bytes) -> None:
        """Write a frame in any WebSocket state before CLOSING (errors, auth replies)."""
        if self.state in _WEBSOCKET_STATES:
            self._write(frame)

    def ping(self, payload: bytes = b"") -> None:
        if self.state == OPEN or self.state == AWAITING_AUTH:
            self.pinged = True
            self._write(encode_ping(payload))

    # ---------------------------------------------------------------- closing
    def close(self, code: int = closecodes.NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the socket is gone within ``close_timeout``."""
        state = self.state
        if state in _WEBSOCKET_STATES:
            self._write(encode_close(code, reason))
            self._leave_open(code)
            # Wait for the peer's close frame, but not for ever.
            self.gw.closing.add(self)
            self.set_deadline(self.gw.config.close_timeout)
            if state is AUTHENTICATING:
                # Reading was paused for the verifier; the peer's close must get through.
                self.held = None
                if not self.write_paused:
                    self.transport.resume_reading()
        elif state in (HANDSHAKE, HTTP):
            self._move(CLOSED)
            self.transport.close()

    def abort(self, code: int = closecodes.ABNORMAL, reason: str = "") -> None:
        """Drop the connection now (no closing handshake); ``code`` is what handlers see."""
        if self.state in _WEBSOCKET_STATES:
            self._leave_open(code)
        if self.state != CLOSED:
            self._move(CLOSED)
            self.clear_deadline()
            self.transport.abort()

    def _fail(self, code: int, reason: str) -> None:
        """RFC 6455 7.1.7: fail the connection after a protocol violation."""
        self.gw.stats.protocol_errors += 1
        if self.state in _WEBSOCKET_STATES:
            self._write(encode_close(code, reason))
            self._leave_open(code)
        self._close_transport()

    def _close_transport(self) -> None:
        self._flush()
        if self.state != CLOSED:
            self._move(CLOSED)
            self.clear_deadline()
            self.transport.close()

    def _leave_open(self, code: int) -> None:
        """Leave the WebSocket states exactly once: unregister, tell the handler."""
        gw = self.gw
        self.close_code = code
        gw.pending.discard(self)
        gw.registry.remove(self)
        if self.state == OPEN:
            gw.stats.ws_closed += 1
        self._move(CLOSING)
        handler = self.handler
        if handler is not None:
            self._call(handler.on_close, self, code)

    def on_deadline(self) -> None:
        state = self.state
        if state in (HANDSHAKE, HTTP):
            # Slowloris: an HTTP request still incomplete after handshake_timeout.
            self.gw.stats.handshake_timeouts += 1
            self._close_transport()
        elif state == CLOSING:
            # The peer never answered our close frame.
            self._move(CLOSED)
            self.transport.abort()
        elif self.handler is not None:
            self.handler.on_deadline(self)

    # ----------------------------------------------------------------- auth
    def authenticated(self, identity: Identity) -> None:
        """Called by a handler once the peer is authenticated: the connection opens."""
        if self.state not in (AWAITING_AUTH, AUTHENTICATING):
            return
        self._move(OPEN)
        self.clear_deadline()
        self.user = identity.user
        self.info = identity.info
        self.request = None  # no longer needed: free it
        gw = self.gw
        gw.pending.discard(self)
        gw.registry.add(self)
        for group in identity.groups:
            gw.registry.join(self, group)

    def open_anonymous(self) -> None:
        """Open without an identity: the route authenticates per action, not per socket.

        Pusher sockets are usable at once (public channels need no auth), so they must be
        OPEN (writes, heartbeat, shutdown) and in the registry by id, but with no user:
        a Pusher signin is scoped to one app and is indexed by the Pusher engine, not in
        the registry's user index (user ids of different apps would collide there).
        """
        if self.state is not AWAITING_AUTH:
            return
        self._move(OPEN)
        self.clear_deadline()
        self.request = None  # no longer needed: free it
        gw = self.gw
        gw.pending.discard(self)
        gw.registry.add(self)

    def resume_after_auth(self) -> None:
        """After an async verifier: deliver what arrived meanwhile, read again."""
        held, self.held = self.held, None
        if held and self.state == OPEN:
            self._dispatch(held)
        if self.state == OPEN and not self.write_paused:
            self.transport.resume_reading()

    def begin_async_auth(self) -> None:
        """An async verifier runs: stop reading until it answers (keeps message order)."""
        self._move(AUTHENTICATING)
        self.transport.pause_reading()

    # -------------------------------------------------------------- helpers
    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception(
                "route handler callback %s failed (conn %s)", getattr(fn, "__name__", fn), self.id
            )
            if self.state in _WEBSOCKET_STATES:
                self.close(closecodes.INTERNAL_ERROR, "internal error")

    def __repr__(self) -> str:
        return f"<Connection {self.id or '-'} {self.state.name} {self.ip} user={self.user}>"
