"""The write path of a connection: frames, the cork, per-connection deflate, slow consumers."""

from __future__ import annotations

from typing import Any

from gateway.connection.base import ConnectionBase
from gateway.connstate import AWAITING_AUTH, CLOSED, OPEN, WEBSOCKET_STATES
from gateway.flow import BACKLOG
from protocol import closecodes
from protocol.codecs import frame_message
from protocol.frames import (
    OP_BINARY,
    OP_TEXT,
    encode_binary,
    encode_frame,
    encode_ping,
    encode_text,
)


class Writer(ConnectionBase):
    __slots__ = ()

    def _write(self, data: bytes) -> None:
        self.ctx.stats.ws_sent_bytes += len(data)  # control frames, write_control's messages
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
        if (
            self.paused
            and self.paused & BACKLOG
            and (
                # Only here, when the peer has already fallen behind, do we pay for
                # asking the transport how much is queued.
                self.transport.get_write_buffer_size() + len(frame)
                > self.ctx.limits.max_send_buffer
            )
        ):
            self.ctx.stats.slow_consumers += 1
            # Queue nothing more but the close frame: a peer that catches up
            # within close_timeout learns why (4413); one that does not is
            # aborted by the closing sweep, so the buffer stops growing here.
            self.close(closecodes.SLOW_CONSUMER, "slow consumer")
            return False
        stats = self.ctx.stats
        stats.ws_sent_bytes += len(frame)
        stats.ws_messages_sent += 1
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
        deflater = self.deflater
        if self.state is not OPEN or deflater is None:
            # Compress nothing that is never sent: with context takeover the peer's
            # LZ77 window would no longer match ours (RFC 7692 7.2.3).
            return False
        return self.write_frame(encode_frame(opcode, deflater.compress(payload), rsv1=True))

    def write_control(self, frame: bytes) -> None:
        """Write a frame in any WebSocket state before CLOSING (errors, auth replies)."""
        if self.state in WEBSOCKET_STATES:
            self.ctx.stats.ws_messages_sent += 1  # its bytes: in _write
            self._write(frame)

    def ping(self, payload: bytes = b"") -> None:
        if self.state is OPEN or self.state is AWAITING_AUTH:
            self.pinged = True
            self._write(encode_ping(payload))
