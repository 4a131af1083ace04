"""Routes: which handler serves a path, for WebSocket upgrades and for plain HTTP.

Non-upgrade requests (the Pusher HTTP API, health and readiness checks, metrics) share
the listening socket with WebSockets, as Pusher-compatible servers do. A second listener
that must serve HTTP only (the Pusher ``api_port``) gets ``HttpOnly(router)``: the same
HTTP routes and no WebSocket route at all, so an upgrade there is refused with 404.

The contracts of the handlers themselves are in ``gateway.connection.contracts``.
"""

from __future__ import annotations

from typing import Any

from gateway.connection.contracts import HttpHandler, WsHandler

__all__ = ["HttpHandler", "HttpOnly", "HttpRouter", "Router", "WsHandler"]


class HttpRouter:
    """Plain HTTP routes, exact paths first, then prefixes in the order they were added."""

    __slots__ = ("_http_exact", "_http_prefix")

    def __init__(self) -> None:
        self._http_exact: dict[str, HttpHandler] = {}
        self._http_prefix: list[tuple[str, HttpHandler]] = []

    def route_http(self, path: str, handler: HttpHandler, *, prefix: bool = False) -> None:
        if prefix:
            self._http_prefix.append((path, handler))
        else:
            self._http_exact[path] = handler

    def http_route(self, path: str) -> HttpHandler | None:
        handler = self._http_exact.get(path)
        if handler is None:
            for pre, h in self._http_prefix:
                if path.startswith(pre):
                    return h
        return handler

    def ws_route(self, path: str) -> WsHandler[Any] | None:
        return None  # no WebSocket routes here (``Router`` has them)


class Router(HttpRouter):
    """HTTP routes and WebSocket routes (the gateway's main listener)."""

    __slots__ = ("_ws_exact", "_ws_prefix")

    def __init__(self) -> None:
        super().__init__()
        self._ws_exact: dict[str, WsHandler[Any]] = {}
        self._ws_prefix: list[tuple[str, WsHandler[Any]]] = []

    def route_ws(self, path: str, handler: WsHandler[Any], *, prefix: bool = False) -> None:
        if prefix:
            self._ws_prefix.append((path, handler))
        else:
            self._ws_exact[path] = handler

    def ws_route(self, path: str) -> WsHandler[Any] | None:
        handler = self._ws_exact.get(path)
        if handler is None:
            for pre, h in self._ws_prefix:
                if path.startswith(pre):
                    return h
        return handler


class HttpOnly:
    """The HTTP routes of a router, with no WebSocket route (a second, HTTP-only listener)."""

    __slots__ = ("_router",)

    def __init__(self, router: HttpRouter) -> None:
        self._router = router

    def http_route(self, path: str) -> HttpHandler | None:
        return self._router.http_route(path)

    def ws_route(self, path: str) -> WsHandler[Any] | None:
        return None
