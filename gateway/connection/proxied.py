"""Connections behind a reverse proxy or a TCP load balancer: who the client really is.

The listener picks the connection class once (``connection_class``). Without
``trusted_proxies`` every socket is a plain ``Connection`` and nothing here runs, not even
a check. Otherwise ``ip`` (what the 429 check, the failure limiter, the verifier's
``ConnectionInfo.remote_ip`` and every log line read) is set to the client's address
before anything reads it:

* ``ForwardedConnection`` (``trusted_proxies``): when the TCP peer is a trusted proxy,
  the request's ``X-Forwarded-For`` names the client (right-most untrusted hop,
  ``protocol.forwarded``); from any other peer the header is ignored. It is read per
  request, before routing: a proxy may send requests of several clients over one
  keep-alive connection, so the peer's own address stays in ``peer_ip``.
* ``ProxyProtocolConnection`` (``proxy_protocol``): the first bytes must be a PROXY v1/v2
  header (``protocol.proxyproto``) and the peer a trusted proxy; the header's source is
  the client (``LOCAL``/``UNKNOWN``: the peer). The object then *becomes* a plain
  ``Connection`` (same slot layout, so ``__class__`` may be reassigned): every method
  but ``data_received`` is the plain one, and that one (bound by the event loop when the
  connection was made) costs one type check per read before forwarding. A peer that is
  not trusted, or no valid header, closes the connection: counted in ``proxy_refused``
  and logged within a budget (a balancer configured without the header would otherwise
  log every socket).
  ``X-Forwarded-For`` is not read then: an L4 balancer does not write it, the client does.
"""

from __future__ import annotations

import logging
from sys import intern
from typing import TYPE_CHECKING, ClassVar

from gateway.connection.core import Connection
from gateway.connstate import HANDSHAKE
from gateway.logbudget import LogBudget
from protocol.forwarded import TrustedProxies
from protocol.proxyproto import ProxyHeaderError, parse_proxy_header

if TYPE_CHECKING:
    import asyncio

    from protocol.handshake import Request

__all__ = ["ForwardedConnection", "ProxyProtocolConnection", "connection_class"]

log = logging.getLogger("uvgate.proxy")


class ForwardedConnection(Connection):
    __slots__ = ("peer_ip",)

    trusted: ClassVar[TrustedProxies]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.peer_ip = self.ip

    def _forwarded(self, request: Request) -> None:
        peer = self.peer_ip
        trusted = self.trusted
        if peer in trusted:
            self.ip = intern(trusted.client_ip(peer, request.headers.get("x-forwarded-for")))

    def _upgrade(self, request: Request, rest: bytes) -> None:
        self._forwarded(request)
        super()._upgrade(request, rest)

    def _admit(self, request: Request) -> bool:
        self._forwarded(request)
        return super()._admit(request)


class ProxyProtocolConnection(Connection):
    # True once the header is read: from then on every read goes to Connection's own
    # data_received. (The object cannot turn into a plain Connection by assigning
    # __class__: the compiled Connection is an extension type.)
    __slots__ = ("header_read", "source_port")

    trusted: ClassVar[TrustedProxies]
    refusals: ClassVar[LogBudget]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.header_read = False
        self.source_port: int | None = None  # the client's, once the header names it
        super().connection_made(transport)
        if self.state is HANDSHAKE and self.ip not in self.trusted:
            self._refuse("peer is not a trusted proxy")

    def data_received(self, data: bytes) -> None:
        if self.header_read:
            Connection.data_received(self, data)
            return
        if self.state is not HANDSHAKE:
            return  # refused: the transport is closing
        try:
            buffer = self.buffer
            if buffer is not None:
                buffer += data
                pending: bytes | bytearray = buffer
            else:
                pending = data
            try:
                header = parse_proxy_header(pending)
            except ProxyHeaderError as exc:
                self._refuse(str(exc))
                return
            if header is None:
                if buffer is None:
                    self.buffer = bytearray(data)
                return
            if header.source is not None:
                self.ip = intern(header.source[0])
                self.source_port = header.source[1]
            rest = bytes(pending[header.size :])
            self.buffer = None
            self.header_read = True
        except Exception as exc:
            self._internal_error(exc, "PROXY header")
            return
        if rest:
            Connection.data_received(self, rest)

    @property
    def peer(self) -> tuple[str, int]:
        """The client's (ip, port) from the PROXY header (the proxy's without one)."""
        ip, port = super().peer
        if self.source_port is not None and port:
            port = self.source_port
        return (ip, port)

    def _refuse(self, reason: str) -> None:
        self.ctx.stats.proxy_refused += 1
        self.refusals.log(
            (reason, self.ip),
            "PROXY protocol header refused",
            {"ip": self.ip, "reason": reason},
        )
        self.close()


def connection_class(
    trusted: TrustedProxies | None, *, proxy_protocol: bool, refusals: LogBudget | None = None
) -> type[Connection]:
    """The class of this listener's connections (a plain ``Connection`` by default)."""
    if proxy_protocol:
        if not trusted:
            raise ValueError("proxy_protocol needs trusted proxies")
        budget = refusals if refusals is not None else LogBudget(log)
        return type(
            "ProxyProtocolConnection",
            (ProxyProtocolConnection,),
            {"__slots__": (), "trusted": trusted, "refusals": budget},
        )
    if trusted:
        return type(
            "ForwardedConnection", (ForwardedConnection,), {"__slots__": (), "trusted": trusted}
        )
    return Connection
