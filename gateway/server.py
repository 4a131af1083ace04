"""The gateway: the composition root that builds the parts, wires them, and runs them.

Embedding (inside any asyncio program, uvloop recommended)::

    gateway = Gateway(Config(port=6001), verifier=MyVerifier(), on_message=handle)
    await gateway.serve()            # until gateway.shutdown() or SIGTERM/SIGINT
    gateway.registry.broadcast("room", {"hello": "world"})   # from anywhere

Every other part receives only what it uses: a connection gets a ``ConnectionContext``
and a router; a route gets the auth gate, the stats and its settings; the Pusher service
gets its hub, the registry and the gate. Parts with a life of their own (the Pusher
service, its webhook dispatcher and API listener) are components: started after the
listener is up, stopped after the connections are closed, and scraped for metrics.

One gateway object per worker process; nothing here is a module-level singleton, so
tests run several gateways in one process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from gateway.applications import Application, CallbackApplication, load_application
from gateway.auth import AuthGate
from gateway.config import Config, ConfigError
from gateway.connection import HOT_PATH, Connection
from gateway.connection.proxied import connection_class
from gateway.context import ConnectionContext, Limits, ServerState
from gateway.http import HttpResponse
from gateway.listener import Listener
from gateway.liveness import Heartbeat, LivenessSweep
from gateway.logbudget import LogBudget
from gateway.metrics import (
    CONTENT_TYPE,
    Metric,
    PartsCollector,
    WorkerLabel,
    merge,
    process_collectors,
    render,
    snapshot,
)
from gateway.native import NativeHandler
from gateway.pusher.appmetrics import app_metrics
from gateway.pusher.webhooks import WebhookDispatcher, any_webhooks
from gateway.ratelimit import FailureLimiter
from gateway.registry import Registry
from gateway.reload import ReloadPlan, plan_reload
from gateway.router import HttpOnly, Router
from gateway.stats import Stats
from gateway.tasks import TaskGroup
from gateway.timers import Timers
from gateway.tls import load_tls
from gateway.verifiers import load_verifier
from gateway.verifiers.base import Verifier
from gateway.workermetrics import SiblingMetrics
from protocol import closecodes
from protocol.forwarded import TrustedProxies
from protocol.handshake import Request
from protocol.ids import IdFactory
from protocol.pusher.apps import App, StaticAppStore
from protocol.pusher.hub import Session

if TYPE_CHECKING:
    from gateway.cluster.node import ClusterNode

log = logging.getLogger("uvgate.server")

CACHE_SWEEP = 5.0  # seconds between two passes dropping expired Pusher cache entries
LOG_FLUSH = 10.0  # seconds between two reports of log lines suppressed over their budget


class Component(Protocol):
    """A part with a life of its own, run by the gateway."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def metrics(self) -> Iterable[Metric]: ...


def default_node_id() -> int:
    """A stable node number 0-9999 derived from the hostname."""
    import socket

    return zlib.crc32(socket.gethostname().encode()) % 10000


def verifier_for(config: Config) -> Verifier:
    """The verifier ``config`` names, with its options (``secret`` for hmac)."""
    options = dict(config.verifier_options)
    if config.verifier == "hmac" and "secret" not in options and config.secret:
        options["secret"] = config.secret
    return load_verifier(config.verifier, options)


def _websockets(conns: Iterable[Connection]) -> bool:
    return any(conn.in_websocket for conn in conns)


async def _aclose(verifier: Verifier) -> None:
    aclose = getattr(verifier, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("closing verifier %r failed", verifier)


class Gateway:
    def __init__(
        self,
        config: Config | None = None,
        *,
        verifier: Verifier | None = None,
        app: Application | None = None,
        on_connect: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_close: Callable[..., Any] | None = None,
        worker: int = 0,
    ) -> None:
        self.config = config = config or Config()
        config.validate()
        self.worker = worker
        # --- the parts every connection shares
        self.limits = Limits.from_config(config)
        self.timers: Timers = Timers()
        self.tasks = TaskGroup()
        self.registry: Registry[Connection] = Registry()
        self.stats = Stats()
        self.limiter = FailureLimiter(config.auth_fail_limit, config.auth_fail_window)
        node = config.node_id if config.node_id is not None else default_node_id()
        self.ids = IdFactory(node, worker)
        self.state = ServerState()
        self.ctx = ConnectionContext(
            self.limits,
            self.timers,
            self.tasks,
            self.registry,
            self.stats,
            self.limiter,
            self.ids,
            self.state,
        )
        self.router = Router()
        self.components: list[Component] = []
        # /metrics: the parts' figures and this process's, each sample labelled with the
        # worker; a registry of its own (prometheus-client's global one is not used).
        self.collector = CollectorRegistry(auto_describe=False)
        self.collector.register(
            WorkerLabel([PartsCollector(self.metrics), *process_collectors()], worker)
        )
        self.siblings: SiblingMetrics | None = None
        # --- authentication and the native route
        # A verifier given by the embedder is theirs: a reload never replaces it.
        self._own_verifier = verifier is None
        if verifier is None:
            verifier = verifier_for(config)
        self.verifier = verifier
        self._retired: list[Verifier] = []  # replaced by a reload, closing when idle
        self.gate = AuthGate(verifier, self.limiter, self.stats, self.tasks)
        self.heartbeat = Heartbeat(config.ping_interval, config.idle_timeout)
        if app is None:
            if on_connect or on_message or on_close:
                app = CallbackApplication(on_connect, on_message, on_close)
            else:
                app = load_application(config.app, self.registry, self)
        self.app = app
        self.native = NativeHandler(
            self.gate,
            app,
            tasks=self.tasks,
            stats=self.stats,
            heartbeat=self.heartbeat,
            auth_timeout=config.auth_timeout,
        )
        self.router.route_ws(config.ws_path, self.native)
        self.router.route_http("/up", self._up)
        self.router.route_http("/ready", self._ready)
        self.router.route_http("/metrics", self._metrics)
        # --- a node of a cluster when redis_url is set (claimed in start())
        self.cluster: ClusterNode | None = None
        if config.redis_url is not None:
            from gateway.cluster import build as build_cluster

            self.cluster = build_cluster(config, self.tasks, worker, self.registry, self.limiter)
            self.components.append(self.cluster)
        # --- Pusher protocol v7 on /app/{key} and its HTTP API on /apps/
        self.pusher = None
        if config.pusher:
            from gateway.pusher import build

            self.pusher = pusher = build(
                config,
                registry=self.registry,
                gate=self.gate,
                stats=self.stats,
                tasks=self.tasks,
                heartbeat=self.heartbeat,
                engine=self.cluster.engine if self.cluster is not None else None,
            )
            if self.cluster is not None:
                self.cluster.engine.apps = pusher.store.by_id
            self.router.route_ws("/app/", pusher.handler, prefix=True)
            self.router.route_http("/apps/", pusher.api.handle_apps, prefix=True)
            self.router.route_http("/users/", pusher.api.handle_users, prefix=True)
            self.timers.every(CACHE_SWEEP, pusher.expire)
            self.timers.every(LOG_FLUSH, lambda _now: pusher.api.refusals.flush())
            self.components.append(pusher)
        # --- behind proxies: how each connection learns the client's address
        self.proxy_refusals = LogBudget(logging.getLogger("uvgate.proxy"))
        self.connection_class = connection_class(
            TrustedProxies(config.trusted_proxies) if config.trusted_proxies else None,
            proxy_protocol=config.proxy_protocol,
            refusals=self.proxy_refusals,
        )
        if config.proxy_protocol:
            self.timers.every(LOG_FLUSH, lambda _now: self.proxy_refusals.flush())
        self.listener: Listener | None = None
        self._tls: ssl.SSLContext | None = None
        self._stopped: asyncio.Event | None = None
        self._shutting_down = False

    # ------------------------------------------------------------ HTTP routes
    def _up(self, request: Request, body: bytes, conn: Connection) -> HttpResponse:
        return HttpResponse.json(200, {"status": "up"})

    def _ready(self, request: Request, body: bytes, conn: Connection) -> HttpResponse:
        if self._shutting_down:
            return HttpResponse.json(503, {"status": "shutting down"})
        if self.cluster is not None and not self.cluster.ready:
            return HttpResponse.json(503, {"status": "not ready", "reason": "cluster"})
        if self.state.accepting and self.ctx.open_and_pending() <= self.limits.max_connections:
            return HttpResponse.json(200, {"status": "ready", "connections": len(self.registry)})
        return HttpResponse.json(503, {"status": "not ready"})

    def _metrics(
        self, request: Request, body: bytes, conn: Connection
    ) -> HttpResponse | Awaitable[HttpResponse]:
        if self.siblings is not None:
            return self._instance_metrics()  # the other workers answer asynchronously
        return HttpResponse(200, generate_latest(self.collector), CONTENT_TYPE)

    async def _instance_metrics(self) -> HttpResponse:
        assert self.siblings is not None
        groups, up = await self.siblings.gather()
        mine = list(self.collector.collect())
        return HttpResponse(200, render([*merge([mine, *groups]), up]), CONTENT_TYPE)

    def metrics(self) -> list[Metric]:
        """Every metric family of this worker's parts, read now (``process_*`` and
        ``python_*`` are added by ``collector``)."""
        out = self.stats.metrics()
        websockets = len(self.registry) + sum(1 for c in self.timers.pending if c.in_websocket)
        out.append(
            Metric.single(
                "uvgate_ws_open",
                "gauge",
                "WebSocket connections open now, authenticated or not: ws_opened_total "
                "minus ws_closed_total (soketi_connected)",
                websockets,
            )
        )
        out.append(
            Metric.single(
                "uvgate_connections",
                "gauge",
                "Open (authenticated) connections",
                len(self.registry),
            )
        )
        out.append(
            Metric.single(
                "uvgate_pending_connections",
                "gauge",
                "Connections handshaking or not yet authenticated",
                len(self.timers.pending),
            )
        )
        out.append(
            Metric(
                "uvgate_build_info",
                "gauge",
                "Always 1; hot_path says whether the compiled hot path or its pure-Python "
                "twin runs",
                [({"hot_path": HOT_PATH}, 1)],
            )
        )
        if self.pusher is not None:
            out.extend(app_metrics(self.pusher))
        for component in self.components:
            out.extend(component.metrics())
        return out

    def metrics_text(self) -> str:
        """This worker's ``/metrics`` page (``process_*`` included)."""
        return generate_latest(self.collector).decode()

    def share_metrics(self, directory: str, workers: int) -> None:
        """With workers: answer siblings' scrapes from ``directory`` and gather theirs, so
        one scrape shows the instance (``gateway.workermetrics``). Before ``start()``."""
        self.siblings = SiblingMetrics(
            directory, self.worker, workers, lambda: snapshot(self.collector)
        )
        self.components.append(self.siblings)

    # ------------------------------------------------------------------ reload
    async def reload(self, config: Config) -> ReloadPlan:
        """Apply ``config`` where it can change under live connections (``gateway.reload``).

        Everything is built and checked before anything changes: on ``ConfigError`` the
        gateway runs on exactly as before. Returns what changed and what needs a restart.
        """
        plan = plan_reload(self.config, config)
        new = plan.config
        new.validate()
        tls = self._tls
        if plan.tls and tls is not None:
            assert new.certfile is not None
            load_tls(new.certfile, new.keyfile)  # every mistake named, nothing changed yet
        verifier = None
        if plan.verifier and self._own_verifier:
            try:
                verifier = verifier_for(new)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            except Exception as exc:  # a custom verifier's own failure
                raise ConfigError(
                    f"verifier {new.verifier!r}: {type(exc).__name__}: {exc}"
                ) from None
        apps = None
        if plan.apps and self.pusher is not None:
            from gateway.pusher import build_store

            try:
                apps = list(build_store(new))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        # --- apply
        if plan.tls and tls is not None:
            assert new.certfile is not None
            try:
                # The listeners keep this context: new handshakes use the new pair, the
                # connections already made keep theirs.
                tls.load_cert_chain(new.certfile, new.keyfile)
            except (ssl.SSLError, OSError) as exc:  # the files changed since the check
                raise ConfigError(f"options 'certfile'/'keyfile': {exc}") from None
        if verifier is not None:
            old = self.verifier
            self.verifier = verifier
            self.gate.use(verifier)
            self._retired.append(old)
            self.tasks.spawn(self._retire(old))
        if apps is not None:
            self._replace_apps(apps)
        self.config = new
        return plan

    async def _retire(self, verifier: Verifier) -> None:
        """Close a replaced verifier once the verifications it started are answered."""
        loop = asyncio.get_running_loop()
        # An answer cannot matter after the connection's auth deadline; a backend that
        # never answers must not keep the old verifier (and its sessions) for ever.
        deadline = loop.time() + self.config.auth_timeout + 5.0
        while self.gate.in_flight(verifier) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if verifier in self._retired:
            self._retired.remove(verifier)
            await _aclose(verifier)

    def _replace_apps(self, apps: list[App]) -> None:
        pusher = self.pusher
        assert pusher is not None
        store = pusher.store
        if not isinstance(store, StaticAppStore):
            raise ConfigError("the Pusher app store of this gateway cannot be reloaded")
        store.replace(apps)
        # Sockets of an app still configured take its new settings (a rotated secret
        # must sign their next subscriptions); those of a removed app keep the old one.
        for conn in self.registry:
            session = conn.session
            if isinstance(session, Session):
                app = store.by_id(session.app.id)
                if app is not None and app is not session.app:
                    session.app = app
        if pusher.dispatcher is None and any_webhooks(store):
            if self.cluster is not None:
                # A cluster sends each webhook once through its outbox, wired at start.
                log.warning(
                    "webhooks added by a reload start after a restart of each node "
                    "(no app had webhooks when this node started)"
                )
                return
            dispatcher = WebhookDispatcher(store)
            pusher.dispatcher = dispatcher
            pusher.webhooks = dispatcher
            self.tasks.spawn(dispatcher.start())

    # --------------------------------------------------------------- lifecycle
    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def sockets(self) -> list[Any]:
        return self.listener.sockets if self.listener is not None else []

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        port = self.listener.port if self.listener is not None else None
        if port is None:
            raise RuntimeError("gateway is not listening")
        return port

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.certfile:
            return None
        return load_tls(self.config.certfile, self.config.keyfile)

    def _liveness_period(self) -> float | None:
        periods = [self.heartbeat.period]
        if self.pusher is not None:
            periods.append(self.pusher.handler.liveness_period())
        known = [p for p in periods if p is not None]
        return min(known) if known else None

    async def _join_cluster(self, cluster: ClusterNode) -> None:
        """Claim this node's id (before any connection id is issued), then run it."""
        cfg = self.config
        node_id = await cluster.claim(cfg.node_id, default_node_id())
        self.ids.assign(node_id)
        if self.pusher is not None and self.pusher.dispatcher is not None:
            from gateway.cluster.outbox import Outbox

            cluster.outbox = Outbox(
                cluster.link, cluster.key, self.pusher.dispatcher, self.pusher.store.by_id
            )
        await cluster.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while not cluster.ready and loop.time() < deadline:
            await asyncio.sleep(0.02)
        log.info(
            "cluster node",
            extra={
                "fields": {"node": cluster.key, "ready": cluster.ready, "prefix": cfg.redis_prefix}
            },
        )

    async def start(self, *, sock: Any = None) -> None:
        """Bind and start accepting; returns once listening."""
        self._stopped = asyncio.Event()
        cfg = self.config
        if self.cluster is not None:
            await self._join_cluster(self.cluster)
        self._tls = tls = self.ssl_context()
        period = self._liveness_period()
        if period is not None:
            self.timers.every(period, LivenessSweep(self.registry))
        self.timers.start()
        self.listener = Listener(
            self.ctx,
            self.router,
            host=cfg.host,
            port=cfg.port,
            backlog=cfg.backlog,
            ssl_context=tls,
            reuse_port=cfg.workers > 1,
            sock=sock,
            connection_class=self.connection_class,
        )
        if self.pusher is not None and cfg.api_port is not None:
            if cfg.api_port != cfg.port or cfg.port == 0:
                self.pusher.api_listener = Listener(
                    self.ctx,
                    HttpOnly(self.router),
                    host=cfg.host,
                    port=cfg.api_port,
                    backlog=cfg.backlog,
                    ssl_context=tls,
                    reuse_port=cfg.workers > 1,
                    connection_class=self.connection_class,
                )
        await self.listener.start()
        self.state.accepting = True
        for component in self.components:
            if component is not self.cluster:  # started before the listener
                await component.start()
        log.info(
            "listening",
            extra={
                "fields": {
                    "worker": self.worker,
                    "address": f"{cfg.host}:{self.port}",
                    # compiled or pure-python (UVGATE_PURE_PYTHON=1, or no compiler at build)
                    "hot_path": HOT_PATH,
                }
            },
        )
        if self.pusher is not None and self.pusher.api_port is not None:
            log.info(
                "Pusher HTTP API listening",
                extra={"fields": {"address": f"{cfg.host}:{self.pusher.api_port}"}},
            )

    async def serve(self, *, install_signals: bool = False) -> None:
        """Start (if needed) and run until ``shutdown()`` completes."""
        if self.listener is None:
            await self.start()
        assert self._stopped is not None
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_shutdown)
        try:
            await self._stopped.wait()
        finally:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    asyncio.get_running_loop().remove_signal_handler(sig)

    def request_shutdown(self) -> None:
        if not self._shutting_down:
            self.tasks.spawn(self.shutdown())

    async def shutdown(self, grace: float | None = None) -> None:
        """Close every WebSocket with a going-away code, wait for them up to ``grace``
        seconds, then abort the stragglers.

        The listener stays open while they drain: plain HTTP is answered (``/ready`` says
        503 so a load balancer moves on, ``/up`` 200, the Pusher HTTP API keeps
        publishing: with a cluster its events reach the other nodes' sockets, and a
        Pusher publish is "accepted", not "delivered to N"), and upgrades get 503 with
        Retry-After. The listener closes once the sockets are gone or the grace is over.
        """
        if self._shutting_down:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._shutting_down = True
        self.state.accepting = False
        grace = self.config.shutdown_grace if grace is None else grace
        log.info(
            "shutting down", extra={"fields": {"connections": len(self.registry), "grace": grace}}
        )
        timers = self.timers
        timers.stop_when_idle()
        for conn in [*self.registry, *timers.pending]:
            if conn.in_websocket or conn.request is None:
                # WebSockets get a going-away code; an HTTP request in progress is
                # answered first (Connection: close), an idle keep-alive just closes.
                handler = conn.handler
                code = handler.shutdown_code if handler is not None else closecodes.GOING_AWAY
                conn.close(code, "server shutting down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # HTTP connections made meanwhile (health checks, API calls) are short and do
        # not hold the shutdown up: only WebSockets are waited for.
        while (self.registry or timers.closing or _websockets(timers.pending)) and (
            loop.time() < deadline
        ):
            await asyncio.sleep(0.02)
        if self.listener is not None:
            self.listener.close()
        for conn in [*self.registry, *timers.pending, *timers.closing]:
            conn.abort(closecodes.GOING_AWAY)
        timers.stop()
        # What the closed connections left to undo (cluster leaves, sign-outs) goes out
        # before the components stop.
        await self.tasks.drain(1.0)
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        await self.tasks.cancel_all()
        for verifier in [*self._retired, self.verifier]:
            await _aclose(verifier)
        self._retired.clear()
        if self.listener is not None:
            await self.listener.wait_closed()
        if self._stopped is not None:
            self._stopped.set()
        log.info("stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
