"""What a WebSocket endpoint (a route) implements: the native protocol, Pusher, yours.

One handler object serves every connection on its path; per-connection state lives
on the ``Connection`` (its ``user``, ``groups``, ``data`` and ``session`` slots), so
a route costs no memory per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.connection import Connection
    from protocol.handshake import Request


class WsHandler(Protocol):
    # Subprotocols the server speaks, in its order of preference.
    subprotocols: Sequence[str]
    # Close code sent to every connection on graceful shutdown.
    shutdown_code: int

    def accept(self, conn: Connection, request: Request) -> None:
        """Before the 101: raise ``HandshakeError`` to refuse with an HTTP status."""

    def on_open(self, conn: Connection) -> None:
        """After the 101 is written."""

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        """A complete text (``str``) or binary (``bytes``) message."""

    def on_deadline(self, conn: Connection) -> None:
        """A deadline the handler set with ``conn.set_deadline`` expired."""

    def on_close(self, conn: Connection, code: int) -> None:
        """Exactly once per opened connection, when it leaves the open states."""
