"""Applications: what happens to messages once a connection is authenticated.

An application has three callbacks, Workerman style: ``on_connect(conn)``,
``on_message(conn, data)`` (``str`` for text frames, ``bytes`` for binary) and
``on_close(conn, code)``. Each may be a plain function (called inline, the fast
path) or a coroutine function (run as a task).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.connection import Connection
    from gateway.server import Gateway


class App(Protocol):
    def on_connect(self, conn: Connection) -> Any: ...

    def on_message(self, conn: Connection, data: str | bytes) -> Any: ...

    def on_close(self, conn: Connection, code: int) -> Any: ...


def load_app(spec: str, gateway: Gateway) -> App:
    """``echo``, ``chat``, or ``pkg.mod:factory`` called with the gateway."""
    if spec == "echo":
        from gateway.apps.echo import EchoApp

        return EchoApp()
    if spec == "chat":
        from gateway.apps.chat import ChatApp

        return ChatApp(gateway)
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ValueError(f"unknown app {spec!r}: use echo, chat or pkg.mod:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load app {spec!r}: {exc}") from None
    app = factory(gateway)
    for name in ("on_connect", "on_message", "on_close"):
        if not callable(getattr(app, name, None)):
            raise ValueError(f"app {spec!r} has no {name}()")
    return app


__all__ = ["App", "load_app"]
