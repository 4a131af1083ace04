"""The Pusher service of one gateway: the component the gateway starts, stops and scrapes.

It owns the parts built by ``gateway.pusher.build`` (hub, engine, WebSocket handler, HTTP
API, webhook dispatcher, optional API listener) and is the embedder's handle on Pusher::

    gateway.pusher.publish(app, "orders", "created", '{"id":1}')

Queries and publishes go to the engine: on one node they answer at once, in a cluster
they return awaitables (the HTTP API awaits them).

``terminate_user`` closes with 4009 "You got disconnected by the app.", after a
``pusher:error`` with the same code, as soketi and sockudo do (``delivery.terminate``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.connection import Connection
from gateway.metrics import Metric
from gateway.pusher.api import PusherApi
from gateway.pusher.delivery import LocalDelivery, WebhookSink
from gateway.pusher.handler import PusherHandler
from protocol.pusher.apps import App, AppStore
from protocol.pusher.cache import CachedEvent
from protocol.pusher.engine import Engine, Maybe
from protocol.pusher.hub import PusherHub, trigger_delivery
from protocol.pusher.state import ChannelState

if TYPE_CHECKING:
    from gateway.listener import Listener
    from gateway.pusher.webhooks import WebhookDispatcher


class PusherService:
    def __init__(
        self,
        store: AppStore,
        hub: PusherHub[Connection],
        engine: Engine,
        delivery: LocalDelivery,
        handler: PusherHandler,
        *,
        dispatcher: WebhookDispatcher | None = None,
        api_listener: Listener | None = None,
        timestamp_window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.hub = hub
        self.engine = engine
        self.delivery = delivery
        self.handler = handler
        self.api = PusherApi(
            self,
            timestamp_window=timestamp_window,
            clock=clock,
            synchronous=getattr(engine, "synchronous", True),
        )
        self.dispatcher = dispatcher
        self.api_listener = api_listener
        self.clock = clock

    # ============================================================ embedder API
    def publish(
        self, app: App, channel: str, event: str, data: str, *, exclude_socket: str | None = None
    ) -> Maybe[int]:
        """Deliver a server event to the subscribers of ``channel`` (on every node).

        Cache channels keep it (even with no subscribers) for their next subscribers;
        ``#server-to-user-{id}`` goes to that user's signed-in connections. One node
        returns how many connections took it; a cluster returns an awaitable.
        """
        delivery = trigger_delivery(app, channel, event, data, exclude_socket)
        return self.engine.trigger(app, delivery, event, data, self.clock())

    def terminate_user(self, app: App, user_id: str) -> Maybe[int]:
        """Close the user's signed-in connections with 4009 (on every node)."""
        return self.engine.terminate(app, user_id)

    def channel_state(self, app: App, channel: str) -> Maybe[ChannelState]:
        return self.engine.channel(app, channel)

    def channels(self, app: App, prefix: str = "") -> Maybe[dict[str, ChannelState]]:
        """Occupied channels whose name starts with ``prefix``."""
        return self.engine.channels(app, prefix)

    def presence_users(self, app: App, channel: str) -> Maybe[list[str]]:
        return self.engine.presence_users(app, channel)

    def cached(self, app: App, channel: str, now: float | None = None) -> Maybe[CachedEvent | None]:
        return self.engine.cached(app, channel, self.clock() if now is None else now)

    def connection_count(self, app: App) -> Maybe[int]:
        return self.engine.connection_count(app)

    def sizes(self, app: App) -> Mapping[str, Any]:
        """Local and (single node) shared index sizes: leak checks."""
        sizes: dict[str, Any] = dict(self.hub.sizes(app))
        engine_sizes = getattr(self.engine, "sizes", None)
        if engine_sizes is not None:
            sizes.update(engine_sizes(app))
        return sizes

    @property
    def webhooks(self) -> WebhookSink | None:
        """Where webhook events go (the dispatcher; tests may put a sink here)."""
        return self.delivery.webhooks

    @webhooks.setter
    def webhooks(self, sink: WebhookSink | None) -> None:
        self.delivery.webhooks = sink

    @property
    def max_channels_per_connection(self) -> int:
        return self.hub.max_channels_per_connection

    @max_channels_per_connection.setter
    def max_channels_per_connection(self, value: int) -> None:
        self.hub.max_channels_per_connection = value

    # ================================================================ component
    async def start(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.start()
        if self.api_listener is not None:
            await self.api_listener.start()

    async def stop(self) -> None:
        """After the gateway closed its connections: their webhook events are queued."""
        if self.api_listener is not None:
            self.api_listener.close()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.api_listener is not None:
            await self.api_listener.wait_closed()

    def expire(self, now: float) -> None:
        """Periodic: drop expired cache entries (a single node keeps them in memory)."""
        expire = getattr(self.engine, "expire", None)
        if expire is not None:
            expire(self.clock())

    def metrics(self) -> list[Metric]:
        out = self.api.metrics()
        if self.dispatcher is not None:
            out += self.dispatcher.metrics()
        return out

    @property
    def api_port(self) -> int | None:
        """The bound API port (useful with ``api_port=0``), None without a second listener."""
        return self.api_listener.port if self.api_listener is not None else None
