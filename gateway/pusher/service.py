"""The Pusher service of one gateway: the component the gateway starts, stops and scrapes.

It owns the parts built by ``gateway.pusher.build`` (hub, WebSocket handler, HTTP API,
webhook dispatcher, optional API listener) and is the embedder's handle on Pusher::

    gateway.pusher.publish(app, "orders", "created", '{"id":1}')

``terminate_user`` closes with 4009 "You got disconnected by the app.", after a
``pusher:error`` with the same code, as soketi and sockudo do: 4000-4099 tells pusher-js
not to reconnect (pusher-protocol.md "Close / error codes"), which is the point of a kick
(a reconnecting pusher-js would sign the user straight back in).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.connection import Connection
from gateway.metrics import Metric
from gateway.pusher.api import PusherApi
from gateway.pusher.delivery import LocalDelivery, WebhookSink
from gateway.pusher.handler import PusherHandler, text_frame
from protocol.pusher import messages
from protocol.pusher.apps import App, AppStore
from protocol.pusher.cache import CachedEvent
from protocol.pusher.errors import UNAUTHORIZED
from protocol.pusher.hub import PusherHub
from protocol.pusher.state import ChannelState

if TYPE_CHECKING:
    from gateway.listener import Listener
    from gateway.pusher.webhooks import WebhookDispatcher

TERMINATED = "You got disconnected by the app."


class PusherService:
    def __init__(
        self,
        store: AppStore,
        hub: PusherHub[Connection],
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
        self.delivery = delivery
        self.handler = handler
        self.api = PusherApi(self, timestamp_window=timestamp_window, clock=clock)
        self.dispatcher = dispatcher
        self.api_listener = api_listener
        self.clock = clock

    # ============================================================ embedder API
    def publish(
        self, app: App, channel: str, event: str, data: str, *, exclude_socket: str | None = None
    ) -> int:
        """Deliver a server event to the subscribers of ``channel``; return how many took it.

        Cache channels keep it (even with no subscribers) for their next subscribers;
        ``#server-to-user-{id}`` goes to that user's signed-in connections.
        """
        delivery = self.hub.publish(
            app, channel, event, data, exclude_socket=exclude_socket, now=self.clock()
        )
        return self.delivery.deliver(delivery)

    def terminate_user(self, app: App, user_id: str) -> int:
        """Close the user's signed-in connections with 4009; return how many."""
        targets = self.hub.user_handles(app, user_id)
        if not targets:
            return 0
        error = text_frame(messages.error(TERMINATED, UNAUTHORIZED))
        for conn in targets:
            conn.write_frame(error)
            conn.close(UNAUTHORIZED, TERMINATED)
        return len(targets)

    def channel_state(self, app: App, channel: str) -> ChannelState:
        return self.hub.channel_state(app, channel)

    def channels(self, app: App, prefix: str = "") -> dict[str, ChannelState]:
        """Occupied channels whose name starts with ``prefix``."""
        return self.hub.channels(app, prefix)

    def presence_users(self, app: App, channel: str) -> list[str]:
        return self.hub.presence_users(app, channel)

    def cached(self, app: App, channel: str, now: float | None = None) -> CachedEvent | None:
        return self.hub.cached(app, channel, self.clock() if now is None else now)

    def connection_count(self, app: App) -> int:
        return self.hub.connection_count(app)

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
        """Periodic: drop expired cache entries."""
        self.hub.expire(self.clock())

    def metrics(self) -> list[Metric]:
        out = self.api.metrics()
        if self.dispatcher is not None:
            out += self.dispatcher.metrics()
        return out

    @property
    def api_port(self) -> int | None:
        """The bound API port (useful with ``api_port=0``), None without a second listener."""
        return self.api_listener.port if self.api_listener is not None else None
