"""Plain HTTP on the gateway's port: the response type and the handler signature.

Non-upgrade requests (the Pusher HTTP API, health and readiness checks, metrics)
share the listening socket with WebSockets, as Pusher-compatible servers do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from protocol.handshake import Request

if TYPE_CHECKING:
    from gateway.connection import Connection


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
        return cls(status, orjson.dumps(data), "application/json", tuple(headers))

    @classmethod
    def text(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
        return cls(status, (text + "\n").encode(), "text/plain; charset=utf-8", tuple(headers))


# handler(request, body, connection) -> response (or an awaitable of one)
HttpHandler = Callable[["Request", bytes, "Connection"], "HttpResponse | Awaitable[HttpResponse]"]
