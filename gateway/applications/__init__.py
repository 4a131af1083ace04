"""Applications: what happens to messages once a native connection is authenticated.

An application has three callbacks, Workerman style: ``on_connect(conn)``,
``on_message(conn, data)`` (``str`` for text frames, ``bytes`` for binary) and
``on_close(conn, code)``. Each may be a plain function (called inline, the fast
path) or a coroutine function (run as a task).

(A Pusher *app* is something else: a tenant with an id, a key and a secret,
``protocol.pusher.App``.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.connection import Connection
    from gateway.registry import Registry


class Application(Protocol):
    def on_connect(self, conn: Connection) -> Any: ...

    def on_message(self, conn: Connection, data: str | bytes) -> Any: ...

    def on_close(self, conn: Connection, code: int) -> Any: ...


class CallbackApplication:
    """An application built from plain callbacks (any may be None)."""

    def __init__(
        self,
        on_connect: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_close: Callable[..., Any] | None = None,
    ) -> None:
        self.on_connect = on_connect or _noop
        self.on_message = on_message or _noop
        self.on_close = on_close or _noop


def _noop(*args: Any) -> None:
    return None


def load_application(spec: str, registry: Registry[Connection], gateway: object) -> Application:
    """``echo``, ``chat`` (given the registry), or ``pkg.mod:factory`` called with the
    gateway (the embedder's handle on everything: its registry, its config...)."""
    if spec == "echo":
        from gateway.applications.echo import EchoApplication

        return EchoApplication()
    if spec == "chat":
        from gateway.applications.chat import ChatApplication

        return ChatApplication(registry)
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ValueError(f"unknown app {spec!r}: use echo, chat or pkg.mod:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load app {spec!r}: {exc}") from None
    app: Application = factory(gateway)
    for name in ("on_connect", "on_message", "on_close"):
        if not callable(getattr(app, name, None)):
            raise ValueError(f"app {spec!r} has no {name}()")
    return app


__all__ = ["Application", "CallbackApplication", "load_application"]
