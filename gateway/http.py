"""The response of a plain HTTP route on the gateway's port."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson


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
