"""The gateway: listening socket, routes, timers, and graceful shutdown.

Embedding (inside any asyncio program, uvloop recommended)::

    gateway = Gateway(Config(port=6001), verifier=MyVerifier(), on_message=handle)
    await gateway.serve()            # until gateway.shutdown() or SIGTERM/SIGINT
    gateway.registry.broadcast("room", {"hello": "world"})   # from anywhere

One gateway object per worker process; nothing here is a module-level singleton,
so tests run several gateways in one process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.apps import App, load_app
from gateway.config import Config
from gateway.connection import Connection
from gateway.deadlines import DeadlineWheel
from gateway.http import HttpHandler, HttpResponse
from gateway.ids import IdFactory, default_node_id
from gateway.native import NativeHandler
from gateway.ratelimit import FailureLimiter
from gateway.registry import Registry
from gateway.routes import WsHandler
from gateway.stats import Stats
from gateway.verifiers import load_verifier
from gateway.verifiers.base import Verifier
from protocol import closecodes

if TYPE_CHECKING:
    from gateway.pusher.engine import PusherEngine

log = logging.getLogger("uvgate.server")

TICK = 0.1  # seconds: resolution of the deadline wheel and of ``gateway.now``
# Handshake, auth and close deadlines are found by sweeping the (small) pending
# and closing sets this often: under a slowloris flood of 20k pending sockets
# that is ~20k float compares every 0.25 s, well under 1% of a core.
SWEEP = 0.25


class CallbackApp:
    """An app built from plain callbacks (any may be None)."""

    def __init__(
        self,
        on_connect: Callable[..., Any] | None,
        on_message: Callable[..., Any] | None,
        on_close: Callable[..., Any] | None,
    ) -> None:
        noop = _noop
        self.on_connect = on_connect or noop
        self.on_message = on_message or noop
        self.on_close = on_close or noop


def _noop(*args: Any) -> None:
    return None


class Gateway:
    def __init__(
        self,
        config: Config | None = None,
        *,
        verifier: Verifier | None = None,
        app: App | None = None,
        on_connect: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        on_close: Callable[..., Any] | None = None,
        worker: int = 0,
    ) -> None:
        self.config = config = config or Config()
        config.validate()
        self.worker = worker
        self.registry = Registry()
        self.pending: set[Connection] = set()  # handshaking or not yet authenticated
        # Out of the registry, closing handshake under way, socket not yet closed.
        self.closing: set[Connection] = set()
        self.stats = Stats()
        self.wheel = DeadlineWheel(TICK)
        self.limiter = FailureLimiter(config.auth_fail_limit, config.auth_fail_window)
        node = config.node_id if config.node_id is not None else default_node_id()
        self.ids = IdFactory(node, worker)
        self.allowed_origins = frozenset(config.allowed_origins) if config.allowed_origins else None
        # Ask the transport to call pause_writing well before the hard bound.
        self.write_high_water = max(16384, min(config.max_send_buffer // 4, 262144))
        self.now = 0.0
        self.accepting = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._stopped: asyncio.Event | None = None
        self._shutting_down = False
        self._last_heartbeat = 0.0
        self._next_sweep = 0.0
        # Components (Pusher, webhooks...) hook into the lifecycle here: start hooks
        # run after the listener is up, shutdown hooks after connections are closed.
        self.start_hooks: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []

        if verifier is None:
            options = dict(config.verifier_options)
            if config.verifier == "hmac" and "secret" not in options and config.secret:
                options["secret"] = config.secret
            verifier = load_verifier(config.verifier, options)
        self.verifier = verifier
        if app is None:
            if on_connect or on_message or on_close:
                app = CallbackApp(on_connect, on_message, on_close)
            else:
                app = load_app(config.app, self)
        self.app = app

        self._ws_exact: dict[str, WsHandler] = {}
        self._ws_prefix: list[tuple[str, WsHandler]] = []
        self._http_exact: dict[str, HttpHandler] = {}
        self._http_prefix: list[tuple[str, HttpHandler]] = []
        self.native = NativeHandler(self, verifier, app)
        self.route_ws(config.ws_path, self.native)
        self.route_http("/up", self._up)
        self.route_http("/ready", self._ready)
        self.route_http("/metrics", self._metrics)
        # Pusher protocol v7 on /app/{key} and its HTTP API: ``self.pusher`` is the engine.
        self.pusher: PusherEngine | None = None
        if config.pusher:
            from gateway.pusher import install

            self.pusher = install(self)

    # ------------------------------------------------------------------ routes
    def route_ws(self, path: str, handler: WsHandler, *, prefix: bool = False) -> None:
        if prefix:
            self._ws_prefix.append((path, handler))
        else:
            self._ws_exact[path] = handler

    def route_http(self, path: str, handler: HttpHandler, *, prefix: bool = False) -> None:
        if prefix:
            self._http_prefix.append((path, handler))
        else:
            self._http_exact[path] = handler

    def ws_route(self, path: str) -> WsHandler | None:
        handler = self._ws_exact.get(path)
        if handler is None:
            for pre, h in self._ws_prefix:
                if path.startswith(pre):
                    return h
        return handler

    def http_route(self, path: str) -> HttpHandler | None:
        handler = self._http_exact.get(path)
        if handler is None:
            for pre, h in self._http_prefix:
                if path.startswith(pre):
                    return h
        return handler

    def _up(self, request: Any, body: bytes, conn: Connection) -> HttpResponse:
        return HttpResponse.json(200, {"status": "up"})

    def _ready(self, request: Any, body: bytes, conn: Connection) -> HttpResponse:
        if self.accepting and len(self.registry) + len(self.pending) <= self.config.max_connections:
            return HttpResponse.json(200, {"status": "ready", "connections": len(self.registry)})
        return HttpResponse.json(503, {"status": "not ready"})

    def _metrics(self, request: Any, body: bytes, conn: Connection) -> HttpResponse:
        gauges = {"connections": len(self.registry), "pending_connections": len(self.pending)}
        text = self.stats.prometheus(gauges, f'{{worker="{self.worker}"}}')
        return HttpResponse(200, text.encode(), "text/plain; version=0.0.4")

    # --------------------------------------------------------------- lifecycle
    @property
    def sockets(self) -> list[Any]:
        return list(getattr(self._server, "sockets", None) or ())

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("gateway is not listening")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.certfile:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.certfile, self.config.keyfile)
        return ctx

    async def start(self, *, sock: Any = None) -> None:
        """Bind and start accepting; returns once listening."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.now = loop.time()
        self._last_heartbeat = self.now
        cfg = self.config
        kwargs: dict[str, Any] = {"backlog": cfg.backlog, "ssl": self.ssl_context()}
        if sock is not None:
            kwargs["sock"] = sock
        else:
            kwargs.update(host=cfg.host, port=cfg.port, reuse_port=cfg.workers > 1 or None)
        self._server = await loop.create_server(lambda: Connection(self), **kwargs)
        self.accepting = True
        self._ticker = loop.call_later(TICK, self._tick)
        for hook in self.start_hooks:
            await hook()
        log.info(
            "listening",
            extra={"fields": {"worker": self.worker, "address": f"{cfg.host}:{self.port}"}},
        )

    async def serve(self, *, install_signals: bool = False) -> None:
        """Start (if needed) and run until ``shutdown()`` completes."""
        if self._server is None:
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
            self.track(asyncio.ensure_future(self.shutdown()))

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, close everyone with a going-away code, wait, then abort stragglers."""
        if self._shutting_down:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._shutting_down = True
        self.accepting = False
        grace = self.config.shutdown_grace if grace is None else grace
        log.info(
            "shutting down", extra={"fields": {"connections": len(self.registry), "grace": grace}}
        )
        if self._server is not None:
            self._server.close()
        for conn in [*self.registry, *self.pending]:
            handler = conn.handler
            code = handler.shutdown_code if handler is not None else closecodes.GOING_AWAY
            conn.close(code, "server shutting down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (self.registry or self.pending or self.closing) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in [*self.registry, *self.pending, *self.closing]:
            conn.abort(closecodes.GOING_AWAY)
        if self._ticker is not None:
            self._ticker.cancel()
        for hook in self.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)
        me = asyncio.current_task()
        others = [t for t in self._tasks if t is not me]
        for task in others:
            task.cancel()
        if others:
            await asyncio.gather(*others, return_exceptions=True)
        aclose = getattr(self.verifier, "aclose", None)
        if aclose is not None:
            await aclose()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except TimeoutError:
                log.warning("server did not report closed within 1 s")
        if self._stopped is not None:
            self._stopped.set()
        log.info("stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def track(self, task: asyncio.Future[Any]) -> None:
        """Keep a strong reference to a background task and report its failure."""
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ timers
    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self.now = now = loop.time()
        try:
            self.wheel.expire(now, self._deadline_error)
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP
                self._sweep(self.pending, now)
                self._sweep(self.closing, now)
            # Sweep a few times per interval: a silent peer is pinged between
            # ``interval`` and 1.25 x ``interval``, at a cost of one pass over
            # the registry every interval/4 (about 10 ms per 100k connections).
            # With pings off, the idle close still runs, on the idle timeout's clock.
            interval = self.config.ping_interval or self.config.idle_timeout
            if interval > 0 and now - self._last_heartbeat >= max(interval / 4, TICK):
                self._last_heartbeat = now
                self._heartbeat(now)
        finally:
            if not self._shutting_down or self.registry or self.pending:
                self._ticker = loop.call_later(TICK, self._tick)

    def _sweep(self, conns: set[Connection], now: float) -> None:
        """Fire the expired handshake/auth/close deadlines of ``conns``."""
        if not conns:
            return
        expired = [c for c in conns if 0.0 < c.expires <= now]
        for conn in expired:
            conn.expires = 0.0
            try:
                conn.on_deadline()
            except Exception as exc:
                self._deadline_error(exc)

    def _deadline_error(self, exc: BaseException) -> None:
        log.error("deadline callback failed", exc_info=exc)

    def _heartbeat(self, now: float) -> None:
        """Ping connections silent for ``ping_interval``; close those silent past ``idle_timeout``."""
        cfg = self.config
        idle = cfg.idle_timeout
        interval = cfg.ping_interval
        for conn in self.registry:
            silent = now - conn.last_seen
            if idle > 0 and silent >= idle:
                conn.close(closecodes.GOING_AWAY, "idle timeout")
            elif interval > 0 and silent >= interval and not conn.pinged:
                conn.ping()
