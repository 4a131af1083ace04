"""What the routes of a connection implement: a WebSocket endpoint, an HTTP handler.

The protocols are generic in the connection type so this module imports no connection
code: ``WsHandler[Connection]`` is what the native and Pusher routes implement, and the
connection modules only need ``WsHandler[Any]`` to call them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from gateway.http import HttpResponse
    from protocol.handshake import Request

C = TypeVar("C", contravariant=True)


class WsHandler(Protocol[C]):
    """One object serves every connection on its path; per-connection state lives on the
    connection (``user``, ``groups``, ``data``, ``session``), so a route costs no memory
    per connection."""

    # Subprotocols the server speaks, in its order of preference.
    subprotocols: Sequence[str]
    # Close code sent to every connection on graceful shutdown.
    shutdown_code: int

    def accept(self, conn: C, request: Request) -> None:
        """Before the 101: raise ``HandshakeError`` to refuse with an HTTP status."""

    def on_open(self, conn: C) -> None:
        """After the 101 is written."""

    def on_message(self, conn: C, data: str | bytes) -> None:
        """A complete text (``str``) or binary (``bytes``) message."""

    def on_deadline(self, conn: C) -> None:
        """A deadline the handler set with ``conn.set_deadline`` expired."""

    def on_silence(self, conn: C, silent: float) -> None:
        """The liveness sweep: the open ``conn`` has sent nothing for ``silent`` seconds."""

    def on_close(self, conn: C, code: int) -> None:
        """Exactly once per opened connection, when it leaves the open states."""


# handler(request, body, connection) -> response (or an awaitable of one)
HttpHandler = Callable[["Request", bytes, Any], "HttpResponse | Awaitable[HttpResponse]"]


class Routes(Protocol):
    """Where a connection finds the handler of a request path (``gateway.router``)."""

    def ws_route(self, path: str) -> WsHandler[Any] | None: ...

    def http_route(self, path: str) -> HttpHandler | None: ...
