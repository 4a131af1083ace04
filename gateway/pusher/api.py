"""The Pusher Channels HTTP API (pusher-protocol.md "HTTP API") on the gateway's port.

The gateway routes ``/apps/{app_id}/...`` (and ``/users/{id}/...``, see below) to one
``PusherApi``; the sans-I/O layer (``protocol.pusher.apirequest`` and
``httpapi``) authenticates and parses, the engine publishes and answers the queries.
The operations are written once, as coroutines that await the engine's answers. On one
node the engine answers at once and a request is served synchronously (no task per
request, pipelined requests keep their order); in a cluster the engine's answers come
from Redis and the handler returns an awaitable. When the cluster state cannot be reached
a request is refused with 503, never half delivered.

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

Every refusal is logged (logger ``uvgate.pusher.api``: status, reason, app id, client IP,
method, path), within a budget: the first of each kind per app and client in a minute,
then one "suppressed" line with the count, so a Laravel app with a wrong secret is seen
at once and a flood is a few lines.

Counters: ``PusherApi.stats`` (requests per status, errors), on ``/metrics`` through
``PusherApi.metrics``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from gateway.connection import Connection
from gateway.http import HttpResponse
from gateway.logbudget import LogBudget
from gateway.metrics import Metric
from protocol.handshake import Request
from protocol.pusher import httpapi
from protocol.pusher.apirequest import auth_key_of, parse_query, verify_api_request
from protocol.pusher.apps import App, AppStore
from protocol.pusher.channels import classify
from protocol.pusher.errors import ApiError

log = logging.getLogger("uvgate.pusher.api")

APPS_PREFIX = "/apps/"
USERS_PREFIX = "/users/"
_JSON = "application/json"


T = TypeVar("T")
Maybe = Any  # a value, or an awaitable of it (a cluster engine)


class Engine(Protocol):
    """What the API needs from the Pusher service (``gateway.pusher.service``)."""

    store: AppStore

    def publish(
        self, app: App, channel: str, event: str, data: str, *, exclude_socket: str | None = None
    ) -> Maybe: ...
    def channel_state(self, app: App, channel: str) -> Maybe: ...
    def channels(self, app: App, prefix: str = "") -> Maybe: ...
    def presence_users(self, app: App, channel: str) -> Maybe: ...
    def cached(self, app: App, channel: str, now: float | None = None) -> Maybe: ...
    def terminate_user(self, app: App, user_id: str) -> Maybe: ...


class Unavailable(Exception):
    """The cluster state could not be reached: the request is refused with 503."""


async def _answer(value: Awaitable[T] | T) -> T:
    """The engine's answer, whether it came at once or through an awaitable."""
    if inspect.isawaitable(value):
        try:
            return await value
        except (ApiError, Unavailable):
            raise
        except Exception as exc:
            raise Unavailable(str(exc) or type(exc).__name__) from exc
    return value


def _run_now(work: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends (a synchronous engine) to its result."""
    try:
        work.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    work.close()
    raise RuntimeError("a synchronous engine suspended")


UNKNOWN_APP = "unknown"  # the app_id label of requests naming no configured app


class ApiStats:
    """Counters of the HTTP API: ``requests``, ``errors`` (non-2xx), and per app (the
    ``app_id`` label, ``UNKNOWN_APP`` for ids no app has, so a stranger cannot make a
    label per guess): requests per status, body bytes in and out, events published (one
    per channel)."""

    __slots__ = (
        "by_app_status",
        "errors",
        "events",
        "received_bytes",
        "requests",
        "sent_bytes",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.by_app_status: Counter[tuple[str, int]] = Counter()
        self.received_bytes: Counter[str] = Counter()
        self.sent_bytes: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def count(
        self, status: int, app_id: str = UNKNOWN_APP, received: int = 0, sent: int = 0
    ) -> None:
        self.requests += 1
        self.by_app_status[app_id, status] += 1
        self.received_bytes[app_id] += received
        self.sent_bytes[app_id] += sent
        if not 200 <= status < 300:
            self.errors += 1

    @property
    def by_status(self) -> Counter[int]:
        out: Counter[int] = Counter()
        for (_app, status), count in self.by_app_status.items():
            out[status] += count
        return out

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

    def __init__(
        self,
        engine: Engine,
        *,
        timestamp_window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        synchronous: bool = True,
    ) -> None:
        self.engine = engine
        # True when every engine answer comes at once: requests are then served inline.
        self.synchronous = synchronous
        self.timestamp_window = timestamp_window
        self.stats = ApiStats()
        # Refusals are logged once per (status, reason, app, client) and interval; the
        # gateway calls ``refusals.flush`` from its timers to report what was suppressed.
        self.refusals = LogBudget(log, per_key=1, total=100, interval=60.0)
        # The hub's monotonic clock (cache expiry times are on it).
        self._clock = clock

    # -- entry points (HttpHandler signature) ---------------------------------------------

    def handle_apps(
        self, request: Request, body: bytes, conn: Connection
    ) -> HttpResponse | Awaitable[HttpResponse]:
        """``/apps/...``."""
        return self._handle(request, body, conn, apps=True)

    def handle_users(
        self, request: Request, body: bytes, conn: Connection
    ) -> HttpResponse | Awaitable[HttpResponse]:
        """``/users/{id}/terminate_connections`` as the official Python library (3.3.x)
        posts it: no ``/apps/{id}`` prefix, the app found by ``auth_key``."""
        return self._handle(request, body, conn, apps=False)

    def _handle(
        self, request: Request, body: bytes, conn: Connection, *, apps: bool
    ) -> HttpResponse | Awaitable[HttpResponse]:
        work = self._respond(request, body, conn, apps)
        if self.synchronous:
            return _run_now(work)
        return work

    async def _respond(
        self, request: Request, body: bytes, conn: Connection, apps: bool
    ) -> HttpResponse:
        reason = ""
        try:
            if apps:
                response = await self._route(request, body)
            else:
                response = await self._route_users(request, body)
        except ApiError as exc:
            response = _error(exc.status, exc.message)
            reason = exc.message
        except _MethodNotAllowed as exc:
            response = _error(405, "Method not allowed", (("Allow", exc.allowed),))
            reason = "Method not allowed"
        except Unavailable as exc:
            log.warning(
                "Pusher API %s %s: cluster unavailable (%s)", request.method, request.path, exc
            )
            response = _error(503, "Cluster state unavailable, nothing was delivered; retry")
        except Exception:
            log.exception("Pusher API %s %s failed", request.method, request.path)
            response = _error(500, "Internal error")
        app = self._app_of(request, apps=apps)
        label = app.id if app is not None else UNKNOWN_APP
        self.stats.count(response.status, label, len(body), len(response.body))
        if reason:
            self._refused(request, conn, response.status, reason, app, apps=apps)
        return response

    def _app_of(self, request: Request, *, apps: bool) -> App | None:
        """The configured app a request names (by id in the path, else by auth_key)."""
        store = self.engine.store
        if apps:
            return store.by_id(unquote(request.path[len(APPS_PREFIX) :].split("/", 1)[0]))
        key = auth_key_of(parse_query(request.query))
        return store.by_key(key) if key else None

    def _refused(
        self,
        request: Request,
        conn: Connection,
        status: int,
        reason: str,
        app: App | None,
        *,
        apps: bool,
    ) -> None:
        """One line per kind of refusal, app and client within the budget: a Laravel app
        with the wrong secret shows up at once, without a line per event it sends."""
        if app is not None:
            app_id = app.id
        elif apps:
            # The id asked for (an unknown one is the point of a 404): clipped, not trusted.
            app_id = unquote(request.path[len(APPS_PREFIX) :].split("/", 1)[0])[:64] or "-"
        else:
            app_id = "-"
        self.refusals.log(
            (status, reason, app_id, conn.ip),
            "Pusher API request refused",
            {
                "status": status,
                "reason": reason,
                "app": app_id,
                "ip": conn.ip,
                "method": request.method,
                "path": request.path[:200],
            },
        )

    # -- routing ---------------------------------------------------------------------------

    async def _route(self, request: Request, body: bytes) -> HttpResponse:
        parts = request.path[len(APPS_PREFIX) :].split("/")
        app_id, rest = unquote(parts[0]), parts[1:]
        method = request.method
        n = len(rest)
        if n == 1 and rest[0] == "events":
            _require(method, "POST")
            app, _ = self._authenticate(request, body, self.engine.store.by_id(app_id))
            return await self._trigger(app, body)
        if n == 1 and rest[0] == "batch_events":
            _require(method, "POST")
            app, _ = self._authenticate(request, body, self.engine.store.by_id(app_id))
            return await self._batch(app, body)
        if n >= 1 and rest[0] == "channels" and n <= 3:
            if (n == 3 and rest[2] != "users") or (n >= 2 and not rest[1]):
                raise ApiError(404, "Not found")
            _require(method, "GET")
            app, params = self._authenticate(request, body, self.engine.store.by_id(app_id))
            if n == 1:
                return await self._channels(app, params)
            channel = unquote(rest[1])
            if n == 2:
                return await self._channel(app, channel, params)
            return await self._users(app, channel)
        if n == 3 and rest[0] == "users" and rest[2] == "terminate_connections":
            _require(method, "POST")
            app, _ = self._authenticate(request, body, self.engine.store.by_id(app_id))
            return await self._terminate(app, unquote(rest[1]))
        raise ApiError(404, "Not found")

    async def _route_users(self, request: Request, body: bytes) -> HttpResponse:
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
        return await self._terminate(app, unquote(parts[0]))

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
        window = self.timestamp_window
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

    async def _info(self, app: App, channel: str, wanted: frozenset[str]) -> dict[str, int]:
        state = await _answer(self.engine.channel_state(app, channel))
        info: dict[str, int] = {}
        if "user_count" in wanted and classify(channel).is_presence:
            info["user_count"] = state.user_count or 0  # a vacant channel has no users
        if "subscription_count" in wanted:
            info["subscription_count"] = state.subscription_count
        return info

    async def _publish(self, app: App, trigger: httpapi.TriggerRequest) -> None:
        # Every channel's publish is started before the first is awaited (one Redis round
        # trip for all of them in a cluster), and all must succeed for a 200.
        publish = self.engine.publish
        pending = [
            publish(app, channel, trigger.name, trigger.data, exclude_socket=trigger.socket_id)
            for channel in trigger.channels
        ]
        for result in pending:
            await _answer(result)
        self.stats.events[app.id] += len(trigger.channels)

    async def _trigger(self, app: App, body: bytes) -> HttpResponse:
        trigger = httpapi.parse_trigger(body, app)
        await self._publish(app, trigger)
        if not trigger.info:
            return _ok(httpapi.EMPTY)
        channels = {c: await self._info(app, c, trigger.info) for c in trigger.channels}
        return _ok(httpapi.trigger_response(channels))

    async def _batch(self, app: App, body: bytes) -> HttpResponse:
        # Parsed whole before anything is published: a bad item refuses the batch.
        triggers = httpapi.parse_batch(body, app)
        for trigger in triggers:
            await self._publish(app, trigger)
        if not any(t.info for t in triggers):
            return _ok(httpapi.EMPTY)
        items = [await self._info(app, t.channels[0], t.info) if t.info else {} for t in triggers]
        return _ok(httpapi.batch_response(items))

    async def _channels(self, app: App, params: list[tuple[str, str]]) -> HttpResponse:
        query = httpapi.parse_channels_query(params)
        wanted = query.info
        out: dict[str, dict[str, int]] = {}
        states = await _answer(self.engine.channels(app, query.prefix or ""))
        for name, state in states.items():
            info: dict[str, int] = {}
            if "user_count" in wanted and state.user_count is not None:
                info["user_count"] = state.user_count
            if "subscription_count" in wanted:
                info["subscription_count"] = state.subscription_count
            out[name] = info
        return _ok(httpapi.channels_response(out))

    async def _channel(self, app: App, channel: str, params: list[tuple[str, str]]) -> HttpResponse:
        query = httpapi.parse_channel_query(channel, params)
        state = await _answer(self.engine.channel_state(app, channel))
        cache = None
        if "cache" in query.info:
            now = self._clock()
            entry = await _answer(self.engine.cached(app, channel, now))
            if entry is not None:
                cache = dict(entry.info(now))
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

    async def _users(self, app: App, channel: str) -> HttpResponse:
        httpapi.parse_users_query(channel)
        users = await _answer(self.engine.presence_users(app, channel))
        return _ok(httpapi.users_response(users))

    async def _terminate(self, app: App, user_id: str) -> HttpResponse:
        await _answer(self.engine.terminate_user(app, httpapi.parse_terminate_user(user_id)))
        return _ok(httpapi.EMPTY)

    # -- metrics -----------------------------------------------------------------------------

    def metrics(self) -> list[Metric]:
        stats = self.stats
        requests = Metric(
            "uvgate_pusher_api_requests_total",
            "counter",
            "Pusher HTTP API requests by app and status (soketi_http_calls_received_total)",
        )
        for (app_id, status), count in sorted(stats.by_app_status.items()):
            requests.samples.append(({"app_id": app_id, "status": str(status)}, count))
        errors = Metric.single(
            "uvgate_pusher_api_errors_total",
            "counter",
            "Pusher HTTP API requests answered with a non-2xx status",
            stats.errors,
        )
        return [
            requests,
            errors,
            _per_app(
                "uvgate_pusher_api_received_bytes_total",
                "Bytes of Pusher HTTP API request bodies (soketi_http_received_bytes)",
                stats.received_bytes,
            ),
            _per_app(
                "uvgate_pusher_api_sent_bytes_total",
                "Bytes of Pusher HTTP API response bodies (soketi_http_transmitted_bytes)",
                stats.sent_bytes,
            ),
            _per_app(
                "uvgate_pusher_api_events_total",
                "Events published through the HTTP API, one per channel",
                stats.events,
            ),
        ]


def _per_app(name: str, help: str, counts: Mapping[str, int]) -> Metric:
    metric = Metric(name, "counter", help)
    for app_id, count in sorted(counts.items()):
        metric.samples.append(({"app_id": app_id}, count))
    return metric
