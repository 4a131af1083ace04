"""The Pusher Channels HTTP API (pusher-protocol.md "HTTP API") on the gateway's port.

``register_api(gateway, engine)`` routes ``/apps/{app_id}/...`` (and ``/users/{id}/...``,
see below) to one ``PusherApi``; the sans-I/O layer (``protocol.pusher.apirequest`` and
``httpapi``) authenticates and parses, the engine publishes and answers the queries.
Every handler is synchronous: no task per request, pipelined requests keep their order.

Routes and answers:

==========================================================  ======  ==================
``/apps/{id}/events``                                       POST    ``{}`` or info
``/apps/{id}/batch_events``                                 POST    ``{}`` or info
``/apps/{id}/channels``                                     GET     occupied channels
``/apps/{id}/channels/{channel}``                           GET     one channel
``/apps/{id}/channels/{channel}/users``                     GET     presence members
``/apps/{id}/users/{user_id}/terminate_connections``        POST    ``{}``
``/users/{user_id}/terminate_connections`` (app by key)     POST    ``{}``
==========================================================  ======  ==================

Refusals, JSON ``{"error": message}``: 404 unknown path or unknown app id (the id is part
of the resource path and not a secret, so "not found" is the honest answer, as Pusher
gives for a wrong URL); 405 with ``Allow`` for a wrong method; 401 bad or missing
signature, ``auth_key``, ``body_md5`` or a timestamp outside ``+-config.api_timestamp_window``
(either direction); 403 disabled app (after authentication, so strangers learn nothing);
400 bad body or query, too many channels, batch too big; 413 event data over the app's
limit (the whole body over ``config.max_http_body`` is refused by the connection first).

A signed request may be replayed *within* the timestamp window: refusing repeats would
break clients that legitimately send the same event twice in one second (the official
libraries sign with whole-second timestamps and no nonce).

Counters: ``api_of(gateway).stats`` (requests per status, errors), and on ``/metrics``
next to the core's, with the webhook dispatcher's when there is one.

``config.api_port``: a second listener serving the gateway's HTTP routes only (the API,
``/up``, ``/ready``, ``/metrics``); WebSocket upgrades there get 404. It reuses the core
``Connection`` through a view of the gateway whose ``ws_route`` finds nothing, so
keep-alive, pipelining, body limits and shutdown behave exactly as on the main port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import unquote

from gateway.connection import Connection
from gateway.http import HttpResponse
from protocol.handshake import Request
from protocol.pusher import httpapi
from protocol.pusher.apirequest import auth_key_of, parse_query, verify_api_request
from protocol.pusher.apps import App, AppStore
from protocol.pusher.channels import classify
from protocol.pusher.errors import ApiError

if TYPE_CHECKING:
    from gateway.server import Gateway

log = logging.getLogger("uvgate.pusher.api")

APPS_PREFIX = "/apps/"
USERS_PREFIX = "/users/"
_JSON = "application/json"


class ChannelStateLike(Protocol):
    @property
    def occupied(self) -> bool: ...
    @property
    def subscription_count(self) -> int: ...
    @property
    def user_count(self) -> int | None: ...


class CachedLike(Protocol):
    def info(self, now: float) -> Mapping[str, Any]: ...


class Engine(Protocol):
    """What the API needs from ``gateway.pusher.engine.PusherEngine``."""

    store: AppStore
    webhooks: Any

    def publish(
        self, app: App, channel: str, event: str, data: str, *, exclude_socket: str | None = None
    ) -> int: ...
    def channel_state(self, app: App, channel: str) -> ChannelStateLike: ...
    def channels(self, app: App, prefix: str = "") -> Mapping[str, ChannelStateLike]: ...
    def presence_users(self, app: App, channel: str) -> Iterable[str]: ...
    def cached(self, app: App, channel: str) -> CachedLike | None: ...
    def terminate_user(self, app: App, user_id: str) -> int: ...


class ApiStats:
    """Counters of the HTTP API (``requests``, ``errors`` = non-2xx, per-status counts)."""

    __slots__ = ("by_status", "errors", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.by_status: Counter[int] = Counter()

    def count(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] += 1
        if not 200 <= status < 300:
            self.errors += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "by_status": dict(self.by_status),
        }


def _error(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    return HttpResponse(
        status, httpapi.error_body(ApiError(status, message)), _JSON, tuple(headers)
    )


def _ok(body: bytes) -> HttpResponse:
    return HttpResponse(200, body, _JSON)


class _MethodNotAllowed(Exception):
    def __init__(self, allowed: str) -> None:
        super().__init__(allowed)
        self.allowed = allowed


def _require(method: str, allowed: str) -> None:
    if method != allowed:
        raise _MethodNotAllowed(allowed)


class PusherApi:
    """The HTTP API handlers of one gateway (one per worker, no globals)."""

    def __init__(self, gateway: Gateway, engine: Engine) -> None:
        self.gateway = gateway
        self.engine = engine
        self.stats = ApiStats()
        # The engine's monotonic clock (its cache expiry times are on it).
        self._clock: Callable[[], float] = getattr(engine, "now", time.monotonic)
        self._api_server: asyncio.AbstractServer | None = None

    # -- entry points (HttpHandler signature) ---------------------------------------------

    def handle_apps(self, request: Request, body: bytes, conn: Connection) -> HttpResponse:
        """``/apps/...``."""
        return self._handle(request, body, apps=True)

    def handle_users(self, request: Request, body: bytes, conn: Connection) -> HttpResponse:
        """``/users/{id}/terminate_connections`` as the official Python library (3.3.x)
        posts it: no ``/apps/{id}`` prefix, the app found by ``auth_key``."""
        return self._handle(request, body, apps=False)

    def _handle(self, request: Request, body: bytes, *, apps: bool) -> HttpResponse:
        try:
            response = self._route(request, body) if apps else self._route_users(request, body)
        except ApiError as exc:
            response = _error(exc.status, exc.message)
        except _MethodNotAllowed as exc:
            response = _error(405, "Method not allowed", (("Allow", exc.allowed),))
        except Exception:
            log.exception("Pusher API %s %s failed", request.method, request.path)
            response = _error(500, "Internal error")
        self.stats.count(response.status)
        return response

    # -- routing ---------------------------------------------------------------------------

    def _route(self, request: Request, body: bytes) -> HttpResponse:
        parts = request.path[len(APPS_PREFIX) :].split("/")
        app_id, rest = unquote(parts[0]), parts[1:]
        method = request.method
        n = len(rest)
        if n == 1 and rest[0] == "events":
            _require(method, "POST")
            app, _ = self._authenticate(request, body, self.engine.store.by_id(app_id))
            return self._trigger(app, body)
        if n == 1 and rest[0] == "batch_events":
            _require(method, "POST")
            app, _ = self._authenticate(request, body, self.engine.store.by_id(app_id))
            return self._batch(app, body)
        if n >= 1 and rest[0] == "channels" and n <= 3:
            if (n == 3 and rest[2] != "users") or (n >= 2 and not rest[1]):
                raise ApiError(404, "Not found")
            _require(method, "GET")
            app, params = self._authenticate(request, body, self.engine.store.by_id(app_id))
            if n == 1:
                return self._channels(app, params)
            channel = unquote(rest[1])
            if n == 2:
                return self._channel(app, channel, params)
            return self._users(app, channel)
        if n == 3 and rest[0] == "users" and rest[2] == "terminate_connections":
            _require(method, "POST")
            app, _ = self._authenticate(request, body, self.engine.store.by_id(app_id))
            return self._terminate(app, unquote(rest[1]))
        raise ApiError(404, "Not found")

    def _route_users(self, request: Request, body: bytes) -> HttpResponse:
        parts = request.path[len(USERS_PREFIX) :].split("/")
        if len(parts) != 2 or parts[1] != "terminate_connections":
            raise ApiError(404, "Not found")
        _require(request.method, "POST")
        params = parse_query(request.query)
        key = auth_key_of(params)
        app = self.engine.store.by_key(key) if key else None
        if app is None:
            # The key is the credential here: an unknown one is an authentication failure.
            raise ApiError(401, "Invalid auth_key" if key else "Missing auth_key")
        self._verify(request, body, app, params)
        return self._terminate(app, unquote(parts[0]))

    def _authenticate(
        self, request: Request, body: bytes, app: App | None
    ) -> tuple[App, list[tuple[str, str]]]:
        if app is None:
            raise ApiError(404, "Unknown app")
        params = parse_query(request.query)
        self._verify(request, body, app, params)
        return app, params

    def _verify(
        self, request: Request, body: bytes, app: App, params: list[tuple[str, str]]
    ) -> None:
        # Signed over the path as sent: libraries sign what they put on the wire. A client
        # that percent-encodes a channel name on the wire may have signed the plain name
        # (both name the same resource), so the decoded path is tried second.
        now = time.time()
        window = self.gateway.config.api_timestamp_window
        try:
            verify_api_request(
                request.method, request.path, params, body, app, now, max_skew=window
            )
        except ApiError as exc:
            decoded = unquote(request.path) if "%" in request.path else None
            if exc.status != 401 or decoded is None or decoded == request.path:
                raise
            verify_api_request(request.method, decoded, params, body, app, now, max_skew=window)

    # -- operations ------------------------------------------------------------------------

    def _info(self, app: App, channel: str, wanted: frozenset[str]) -> dict[str, int]:
        state = self.engine.channel_state(app, channel)
        info: dict[str, int] = {}
        if "user_count" in wanted and classify(channel).is_presence:
            info["user_count"] = state.user_count or 0  # a vacant channel has no users
        if "subscription_count" in wanted:
            info["subscription_count"] = state.subscription_count
        return info

    def _publish(self, app: App, trigger: httpapi.TriggerRequest) -> None:
        publish = self.engine.publish
        for channel in trigger.channels:
            publish(app, channel, trigger.name, trigger.data, exclude_socket=trigger.socket_id)

    def _trigger(self, app: App, body: bytes) -> HttpResponse:
        trigger = httpapi.parse_trigger(body, app)
        self._publish(app, trigger)
        if not trigger.info:
            return _ok(httpapi.EMPTY)
        channels = {c: self._info(app, c, trigger.info) for c in trigger.channels}
        return _ok(httpapi.trigger_response(channels))

    def _batch(self, app: App, body: bytes) -> HttpResponse:
        # Parsed whole before anything is published: a bad item refuses the batch.
        triggers = httpapi.parse_batch(body, app)
        for trigger in triggers:
            self._publish(app, trigger)
        if not any(t.info for t in triggers):
            return _ok(httpapi.EMPTY)
        items = [self._info(app, t.channels[0], t.info) if t.info else {} for t in triggers]
        return _ok(httpapi.batch_response(items))

    def _channels(self, app: App, params: list[tuple[str, str]]) -> HttpResponse:
        query = httpapi.parse_channels_query(params)
        wanted = query.info
        out: dict[str, dict[str, int]] = {}
        for name, state in self.engine.channels(app, query.prefix or "").items():
            info: dict[str, int] = {}
            if "user_count" in wanted and state.user_count is not None:
                info["user_count"] = state.user_count
            if "subscription_count" in wanted:
                info["subscription_count"] = state.subscription_count
            out[name] = info
        return _ok(httpapi.channels_response(out))

    def _channel(self, app: App, channel: str, params: list[tuple[str, str]]) -> HttpResponse:
        query = httpapi.parse_channel_query(channel, params)
        state = self.engine.channel_state(app, channel)
        cache = None
        if "cache" in query.info:
            entry = self.engine.cached(app, channel)
            if entry is not None:
                cache = dict(entry.info(self._clock()))
        body = httpapi.channel_response(
            state.occupied,
            # Only asked of presence channels (the parser refuses others); vacant: 0.
            user_count=(state.user_count or 0) if "user_count" in query.info else None,
            subscription_count=(
                state.subscription_count if "subscription_count" in query.info else None
            ),
            cache=cache,
        )
        return _ok(body)

    def _users(self, app: App, channel: str) -> HttpResponse:
        httpapi.parse_users_query(channel)
        return _ok(httpapi.users_response(self.engine.presence_users(app, channel)))

    def _terminate(self, app: App, user_id: str) -> HttpResponse:
        self.engine.terminate_user(app, httpapi.parse_terminate_user(user_id))
        return _ok(httpapi.EMPTY)

    # -- the separate API port ---------------------------------------------------------------

    @property
    def api_port(self) -> int | None:
        """The bound API port (useful with ``api_port=0``), None without a second listener."""
        server = self._api_server
        if server is None:
            return None
        for sock in getattr(server, "sockets", None) or ():
            return int(sock.getsockname()[1])
        return None

    async def start_api_port(self) -> None:
        cfg = self.gateway.config
        if cfg.api_port is None or (cfg.api_port == cfg.port and cfg.port != 0):
            return
        loop = asyncio.get_running_loop()
        view = cast("Gateway", _HttpOnlyView(self.gateway))
        self._api_server = await loop.create_server(
            lambda: Connection(view),
            host=cfg.host,
            port=cfg.api_port,
            backlog=cfg.backlog,
            ssl=self.gateway.ssl_context(),
            reuse_port=cfg.workers > 1 or None,
        )
        log.info(
            "Pusher HTTP API listening",
            extra={"fields": {"address": f"{cfg.host}:{self.api_port}"}},
        )

    async def stop_api_port(self) -> None:
        server, self._api_server = self._api_server, None
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), 1.0)
        except TimeoutError:
            log.warning("API listener did not report closed within 1 s")


class _HttpOnlyView:
    """The gateway as seen by connections of the API port: every attribute is the
    gateway's (shared registry, stats, deadlines, ``accepting``), but no WebSocket route
    exists, so an upgrade there is refused with 404."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def ws_route(self, path: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)


def api_of(gateway: Gateway) -> PusherApi | None:
    """The ``PusherApi`` registered on ``gateway`` (its stats, its API port), if any."""
    handler = gateway.http_route(APPS_PREFIX)
    api = getattr(handler, "__self__", None)
    return api if isinstance(api, PusherApi) else None


def register_api(gateway: Gateway, engine: Engine) -> PusherApi:
    """Route the Pusher HTTP API on ``gateway`` (and on ``config.api_port`` if set), and
    give ``engine`` a webhook dispatcher when any app has webhooks."""
    api = PusherApi(gateway, engine)
    gateway.route_http(APPS_PREFIX, api.handle_apps, prefix=True)
    gateway.route_http(USERS_PREFIX, api.handle_users, prefix=True)
    gateway.start_hooks.append(api.start_api_port)
    gateway.shutdown_hooks.append(api.stop_api_port)

    from gateway.pusher.webhooks import WebhookDispatcher, any_webhooks

    dispatcher = None
    if any_webhooks(engine.store):
        dispatcher = WebhookDispatcher(gateway, engine.store)
        engine.webhooks = dispatcher
        gateway.start_hooks.append(dispatcher.start)
        gateway.shutdown_hooks.append(dispatcher.aclose)

    # /metrics: the core's counters, then the API's and the webhooks' (same worker label).
    core_metrics = gateway.http_route("/metrics")
    if core_metrics is not None:
        labels = f'worker="{gateway.worker}"'

        def metrics(request: Request, body: bytes, conn: Connection) -> Any:
            response = core_metrics(request, body, conn)
            if not isinstance(response, HttpResponse) or response.status != 200:
                return response
            extra = prometheus(api, dispatcher, labels)
            return HttpResponse(200, response.body + extra, response.content_type, response.headers)

        gateway.route_http("/metrics", metrics)
    return api


def prometheus(api: PusherApi, dispatcher: Any, labels: str) -> bytes:
    """Prometheus text lines for the HTTP API and (if any) the webhook dispatcher."""
    lines = [
        "# HELP uvgate_pusher_api_requests_total Pusher HTTP API requests by status",
        "# TYPE uvgate_pusher_api_requests_total counter",
    ]
    for status, count in sorted(api.stats.by_status.items()):
        lines.append(f'uvgate_pusher_api_requests_total{{{labels},status="{status}"}} {count}')
    lines += [
        "# TYPE uvgate_pusher_api_errors_total counter",
        f"uvgate_pusher_api_errors_total{{{labels}}} {api.stats.errors}",
    ]
    if dispatcher is not None:
        gauges = ("pending", "waiting", "in_flight")
        for name, value in dispatcher.stats().items():
            kind = "gauge" if name in gauges else "counter"
            metric = f"uvgate_pusher_webhook_{name}" + ("" if kind == "gauge" else "_total")
            lines += [f"# TYPE {metric} {kind}", f"{metric}{{{labels}}} {value}"]
    return ("\n".join(lines) + "\n").encode()
