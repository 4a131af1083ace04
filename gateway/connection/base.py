"""The state every part of a connection shares: slots, state moves, deadlines, identity.

A connection is one class built as a short chain, one module per job, each adding to
the one before (``base`` < ``writer`` < ``closing`` < ``upgrade`` < ``http1`` < ``core``).
One class rather than a connection object plus helper objects because a gateway holds
idle connections by the hundred thousand: one object and one ``__slots__`` layout per
socket, no pointer hop per call on the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.connection.contracts import Routes, WsHandler
from gateway.connstate import CLOSED, HANDSHAKE, OPEN, TRANSITIONS, WEBSOCKET_STATES, State
from gateway.flow import ReadFlow
from protocol.codecs import JSON, Codec

if TYPE_CHECKING:
    from gateway.context import ConnectionContext
    from gateway.verifiers.base import Identity
    from protocol.deflate import Deflater
    from protocol.frames import FrameParser
    from protocol.handshake import Request

log = logging.getLogger("uvgate.connection")

# ``last_seen`` while the peer has sent something since the last liveness sweep; the
# sweep replaces it with the time of that sweep (``gateway.liveness``).
SEEN = -1.0


class ConnectionBase(ReadFlow):
    __slots__ = (
        "buffer",
        "close_code",
        "codec",
        "cork",
        "ctx",
        "data",
        "deadline_slot",
        "deflater",
        "expires",
        "groups",
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
        "router",
        "session",
        "subprotocol",
        "user",
    )

    def __init__(self, ctx: ConnectionContext, router: Routes) -> None:
        self.ctx = ctx
        self.router = router
        self.state = HANDSHAKE
        self.transport: Any = None
        self.id: str = ""
        # Only the IP is kept, interned: connections from one address (NAT, a
        # proxy, loopback) share one string instead of each holding a tuple,
        # a str and an int (~140 bytes). The port is read back when needed.
        self.ip = ""
        self.buffer: bytearray | None = None
        # The request stays while a verifier may still ask about it (headers, query),
        # and is freed once the connection is authenticated: idle sockets are many.
        self.request: Request | None = None
        self.parser: FrameParser | None = None
        self.handler: WsHandler[Any] | None = None
        # Where complete messages go: the route handler, or straight to the app
        # once a handler hands the connection over (one call less per message).
        self.message_cb: Any = None
        # While not None, frames queue here and leave in one write at the end of
        # data_received: N pipelined requests cost one send() instead of N.
        self.cork: list[bytes] | None = None
        # Events parsed behind a message an async verifier is judging (reading paused).
        self.held: list[Any] | None = None
        self.paused = 0  # read-pause reasons (gateway.flow)
        self.codec: Codec = JSON
        self.subprotocol: str | None = None
        self.user: str | None = None
        # The verifier's Identity is not kept (one object less per connection):
        # its user and info live here, ``identity`` rebuilds it on demand.
        self.info: Mapping[str, Any] | None = None
        self.groups: set[str] | None = None
        self.data: dict[str, Any] | None = None  # free for applications (Workerman style)
        self.session: Any = None  # free for the route handler (e.g. Pusher state)
        self.last_seen = SEEN
        self.deadline_slot = 0
        # Deadline while handshaking, authenticating or closing (0.0 = none): those
        # connections sit in small sets the timers sweep (gateway.timers).
        self.expires = 0.0
        self.pinged = False
        self.close_code: int | None = None
        # permessage-deflate compressor for this connection's own sends (RFC 7692).
        self.deflater: Deflater | None = None

    # ------------------------------------------------------------------ state
    def _move(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal transition {self.state.name} -> {new.name}")
        self.state = new

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    @property
    def in_websocket(self) -> bool:
        """Upgraded and not yet closing: frames may still be written."""
        return self.state in WEBSOCKET_STATES

    @property
    def remote_ip(self) -> str:
        return self.ip

    @property
    def peer(self) -> tuple[str, int]:
        """(ip, port) of the peer; the port is ``0`` once the socket is gone."""
        port = 0
        if self.state is not CLOSED and self.transport is not None:
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

    # -------------------------------------------------------------- deadlines
    def set_deadline(self, delay: float) -> None:
        """Call ``on_deadline`` in ``delay`` seconds (one deadline at a time)."""
        timers = self.ctx.timers
        if self.state is OPEN:
            timers.wheel.add(self, timers.now + delay)
        else:
            # Pending or closing: swept from timers.pending / timers.closing.
            self.expires = timers.now + delay

    def clear_deadline(self) -> None:
        self.expires = 0.0
        if self.deadline_slot:
            self.ctx.timers.wheel.discard(self)

    def on_deadline(self) -> None:
        raise NotImplementedError  # gateway.connection.closing

    # ------------------------------------------------------ shared entry points
    # Implemented further down the chain; declared here so every part may call them.
    def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError  # gateway.connection.closing

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError  # gateway.connection.core

    def _call(self, fn: Any, *args: Any) -> None:
        """Call a route or app callback; a failure is logged and closes with 1011."""
        try:
            fn(*args)
        except Exception:
            log.exception(
                "route handler callback %s failed (conn %s)", getattr(fn, "__name__", fn), self.id
            )
            if self.state in WEBSOCKET_STATES:
                self.close(1011, "internal error")

    def __repr__(self) -> str:
        return f"<Connection {self.id or '-'} {self.state.name} {self.ip} user={self.user}>"
