"""One listening socket: its connections share a context and a router.

The gateway's main port has the full ``Router`` (WebSocket and HTTP routes); the Pusher
HTTP API's own port (``api_port``) gets an ``HttpRouter`` and the same context, so
keep-alive, pipelining, body limits, deadlines and shutdown behave the same on both.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, cast

from gateway.connection import Connection, Routes
from gateway.context import ConnectionContext

log = logging.getLogger("uvgate.server")


class Listener:
    def __init__(
        self,
        ctx: ConnectionContext,
        router: Routes,
        *,
        host: str,
        port: int,
        backlog: int,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        sock: Any = None,
        connection_class: type[Connection] = Connection,
    ) -> None:
        self.ctx = ctx
        self.router = router
        self.host = host
        self.requested_port = port
        self.backlog = backlog
        self.ssl_context = ssl_context
        self.reuse_port = reuse_port
        self.sock = sock
        # A plain Connection, or one that learns the client from a proxy (proxied.py).
        self.connection_class = connection_class
        self.server: asyncio.AbstractServer | None = None

    def _connection(self) -> asyncio.Protocol:
        # A Connection has every callback of asyncio.Protocol without deriving from it
        # (its compiled form is an extension type: gateway/flow.py).
        return cast(asyncio.Protocol, self.connection_class(self.ctx, self.router))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"backlog": self.backlog, "ssl": self.ssl_context}
        if self.sock is not None:
            kwargs["sock"] = self.sock
        else:
            kwargs.update(
                host=self.host, port=self.requested_port, reuse_port=self.reuse_port or None
            )
        self.server = await loop.create_server(self._connection, **kwargs)

    @property
    def sockets(self) -> list[Any]:
        return list(getattr(self.server, "sockets", None) or ())

    @property
    def port(self) -> int | None:
        """The bound port (useful with port 0), None when not listening."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        return None

    def close(self) -> None:
        """Stop accepting; connections already made go on."""
        if self.server is not None:
            self.server.close()

    async def wait_closed(self, timeout: float = 1.0) -> None:
        if self.server is None:
            return
        try:
            await asyncio.wait_for(self.server.wait_closed(), timeout)
        except TimeoutError:
            log.warning("listener did not report closed within %.0f s", timeout)
