"""Closing a connection: the closing handshake, failing, aborting, and deadlines.

Every way out of the open states goes through ``_leave_open`` exactly once: it
unregisters the connection and tells its handler (``on_close``), so no close path
(clean, error, abort, shutdown, timeout) can leak an index entry.
"""

from __future__ import annotations

from gateway.connection.writer import Writer
from gateway.connstate import CLOSED, CLOSING, HANDSHAKE, HTTP, WEBSOCKET_STATES
from gateway.flow import AUTH
from protocol import closecodes
from protocol.frames import encode_close


class Closing(Writer):
    __slots__ = ()

    def close(self, code: int = closecodes.NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the socket is gone within ``close_timeout``."""
        state = self.state
        if state in WEBSOCKET_STATES:
            self._write(encode_close(code, reason))
            self._leave_open(code)
            # Wait for the peer's close frame, but not for ever.
            self.ctx.timers.closing.add(self)
            self.set_deadline(self.ctx.limits.close_timeout)
            if self.paused & AUTH:
                # Reading was paused for a verifier; the peer's close must get through.
                self.held = None
                self.resume_reading_for(AUTH)
        elif state is HANDSHAKE or state is HTTP:
            self._move(CLOSED)
            self.transport.close()

    def abort(self, code: int = closecodes.ABNORMAL, reason: str = "") -> None:
        """Drop the connection now (no closing handshake); ``code`` is what handlers see."""
        if self.state in WEBSOCKET_STATES:
            self._leave_open(code)
        if self.state is not CLOSED:
            self._move(CLOSED)
            self.clear_deadline()
            self.transport.abort()

    def _fail(self, code: int, reason: str) -> None:
        """RFC 6455 7.1.7: fail the connection after a protocol violation."""
        self.ctx.stats.protocol_errors += 1
        if self.state in WEBSOCKET_STATES:
            self._write(encode_close(code, reason))
            self._leave_open(code)
        self._close_transport()

    def _close_transport(self) -> None:
        self._flush()
        if self.state is not CLOSED:
            self._move(CLOSED)
            self.clear_deadline()
            self.transport.close()

    def _leave_open(self, code: int) -> None:
        """Leave the WebSocket states exactly once: unregister, tell the handler."""
        ctx = self.ctx
        self.close_code = code
        ctx.timers.pending.discard(self)
        ctx.registry.remove(self)
        # Every WebSocket leaves here once, refused or timed out before authenticating
        # too, so ws_opened = ws_closed + the sockets still open.
        ctx.stats.ws_closed += 1
        self._move(CLOSING)
        handler = self.handler
        if handler is not None:
            self._call(handler.on_close, self, code)

    def on_deadline(self) -> None:
        state = self.state
        if state is HANDSHAKE or state is HTTP:
            # Slowloris: an HTTP request still incomplete after handshake_timeout.
            self.ctx.stats.handshake_timeouts += 1
            self._close_transport()
        elif state is CLOSING:
            # The peer never answered our close frame.
            self._move(CLOSED)
            self.transport.abort()
        elif self.handler is not None:
            self.handler.on_deadline(self)
