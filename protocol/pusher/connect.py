"""Opening a Pusher connection: the ``/app/{key}?protocol=7`` request and socket ids.

pusher-protocol.md "Connection": the client connects to
``/app/{app_key}?protocol=7&client=js&version=8.x&flash=false``. pusher-js only reads a
refusal from the *close code*, so the gateway completes the WebSocket upgrade, sends
``pusher:error`` (``messages.error_from``) and closes with ``exc.code``; every
``PusherError`` raised here is fatal (4001-4008).

Socket ids are the gateway's connection ids (``protocol.ids``): ``^\\d+\\.\\d+$`` as the
server libraries require, unguessable, naming the node that owns the socket.
"""

from __future__ import annotations

from dataclasses import dataclass

from .apps import App, AppStore
from .errors import (
    APP_DISABLED,
    APP_NOT_FOUND,
    INVALID_PROTOCOL,
    MISSING_PROTOCOL,
    OVER_QUOTA,
    PATH_NOT_FOUND,
    UNSUPPORTED_PROTOCOL,
    PusherError,
)
from .signatures import QueryParams, iter_pairs

SUPPORTED_PROTOCOLS = frozenset({7})
PATH_PREFIX = "/app/"


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    app: App
    protocol: int
    client: str | None = None  # "js", ... (for metrics)
    version: str | None = None  # client library version (for metrics)


def check_connect(
    path: str,
    query: QueryParams,
    store: AppStore,
    *,
    protocols: frozenset[int] = SUPPORTED_PROTOCOLS,
) -> ConnectRequest:
    """Validate the connection request; raises a fatal ``PusherError``.

    ``path``: the request path without query (and without any mount prefix the gateway
    serves under). Checks, in order: path (4005), ``protocol`` missing (4008), not an
    integer (4006) or unsupported (4007), unknown key (4001), disabled app (4003).
    The connection quota is ``check_quota``, once the gateway knows the app's count.
    """
    if not path.startswith(PATH_PREFIX):
        raise PusherError(PATH_NOT_FOUND, "Path not found")
    key = path[len(PATH_PREFIX) :]
    if not key or "/" in key:
        raise PusherError(PATH_NOT_FOUND, "Path not found")
    params: dict[str, str] = {}
    for name, value in iter_pairs(query):
        params.setdefault(name, value)
    raw = params.get("protocol")
    if raw is None or raw == "":
        raise PusherError(MISSING_PROTOCOL, "No protocol version supplied")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3:
        raise PusherError(INVALID_PROTOCOL, "Invalid protocol version")
    protocol = int(raw)
    if protocol not in protocols:
        raise PusherError(UNSUPPORTED_PROTOCOL, "Unsupported protocol version")
    app = store.by_key(key)
    if app is None:
        raise PusherError(APP_NOT_FOUND, "App key not found")
    if not app.enabled:
        raise PusherError(APP_DISABLED, "App is disabled")
    return ConnectRequest(app, protocol, params.get("client"), params.get("version"))


def check_quota(app: App, connections: int) -> None:
    """``connections``: the app's open connections, not counting this one (4004)."""
    if app.max_connections is not None and connections >= app.max_connections:
        raise PusherError(OVER_QUOTA, "Over connection quota")
