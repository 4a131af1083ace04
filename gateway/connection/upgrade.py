"""The WebSocket upgrade: admission checks, the 101 (or a refusal), the frame parser."""

from __future__ import annotations

import logging

from gateway.connection.closing import Closing
from gateway.connstate import AWAITING_AUTH, CLOSED, HANDSHAKE, HTTP, WEBSOCKET_STATES
from protocol.errors import HandshakeError
from protocol.frames import FrameParser
from protocol.handshake import (
    Request,
    accept_response_for,
    http_response,
    reject_response,
    upgrade_terms,
)

log = logging.getLogger("uvgate.connection")


class Upgrade(Closing):
    __slots__ = ()

    def _upgrade(self, request: Request, rest: bytes) -> None:
        ctx = self.ctx
        if self.state is not HANDSHAKE:
            self._reply(http_response(400, b"upgrade after HTTP requests\n"), close=True)
            return
        if not ctx.server.accepting:
            # Draining for a shutdown: the client should go to another instance.
            self._reject(HandshakeError(503, "server shutting down", (("Retry-After", "5"),)))
            return
        # Cheapest refusals first: a flood from one address costs no routing or parsing.
        retry = ctx.limiter.retry_after(self.ip)
        if retry:
            ctx.stats.rate_limited += 1
            self._reject(
                HandshakeError(429, "too many failed attempts", (("Retry-After", str(retry)),))
            )
            return
        handler = self.router.ws_route(request.path)
        if handler is None:
            self._reject(HandshakeError(404, "unknown path"))
            return
        limits = ctx.limits
        if len(ctx.registry) + len(ctx.timers.pending) > limits.max_connections:
            ctx.stats.over_capacity += 1
            self._reject(HandshakeError(503, "over capacity", (("Retry-After", "5"),)))
            return
        try:
            # The terms as a tuple, not an Upgrade object: one object less per socket.
            key, subprotocol, deflate, extensions = upgrade_terms(
                request, handler.subprotocols, limits.allowed_origins, limits.deflate
            )
            self.id = ctx.ids.new()
            self.request = request
            self.handler = handler
            self.subprotocol = subprotocol
            handler.accept(self, request)
        except HandshakeError as exc:
            self._reject(exc)
            return
        inflater = None
        if deflate is not None:
            from protocol.deflate import Deflater, Inflater

            inflater = Inflater(deflate, limits.max_message_size)
            self.deflater = Deflater(deflate)
        self.parser = FrameParser(max_message_size=limits.max_message_size, deflate=inflater)
        self.message_cb = handler.on_message
        self.transport.write(accept_response_for(key, subprotocol, extensions))
        self.clear_deadline()
        ctx.stats.ws_opened += 1
        self._move(AWAITING_AUTH)
        self._call(handler.on_open, self)
        if rest and self.state in WEBSOCKET_STATES:
            self.data_received(rest)

    def _reject(self, exc: HandshakeError) -> None:
        self.ctx.stats.handshake_rejected += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handshake refused ip=%s status=%s reason=%s", self.ip, exc.status, exc.reason
            )
        self._reply(reject_response(exc), close=True)

    def _reply(self, raw: bytes, *, close: bool) -> None:
        """Write a whole HTTP response; with ``close``, end the connection after it."""
        if self.state is CLOSED:
            return
        self.transport.write(raw)
        if close:
            if self.state is HANDSHAKE or self.state is HTTP:
                self._move(CLOSED)
            self.transport.close()
