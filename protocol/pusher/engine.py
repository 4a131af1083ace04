"""The engine: what holds for the whole deployment, and delivery to every node.

The hub (``hub.PusherHub``) knows the connections of *this* node. Everything that must be
decided once for all nodes, or reach connections on other nodes, goes through an engine:

* facts changed by explicit operations: ``connect``/``disconnect`` (an app's connection
  count, its quota), ``join``/``leave`` (channel occupancy, presence membership counted per
  user), ``sign_in``/``sign_out`` (users online, for watchlists), the cache of cache
  channels;
* the announcements those operations decide: ``member_added`` / ``member_removed`` to the
  channel, ``online`` / ``offline`` to a user's watchers, and the webhook events of every
  transition (occupied, vacated, member added, member removed);
* ``publish``: a ``Delivery`` to the matching connections of every node, in one order.

``MemoryEngine`` is the engine of one node: its facts are this process's, its deliveries
are local and immediate, every method answers synchronously (several of them can share a
``MemoryBus``: a cluster inside one process). A cluster engine
(``gateway.cluster``) keeps the facts in Redis, changes them atomically and delivers
through Redis PUB/SUB; its methods return awaitables. The caller handles both: a method
returns a value, or an awaitable of that value (``is_pending``). ``tests/engine_contract``
runs the same suite against both.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeAlias, TypeVar

from . import messages
from . import webhooks as wh
from .apps import App
from .cache import CachedEvent
from .channels import classify
from .hub import Delivery, Target
from .presence import PresenceMember
from .state import ChannelState, Joined, MemoryState

T = TypeVar("T")
# A value, or (a cluster engine) an awaitable of it.
Maybe: TypeAlias = T | Awaitable[T]


class Local(Protocol):
    """What an engine needs of the node it runs on (the shell's ``LocalDelivery``)."""

    def deliver(self, delivery: Delivery) -> int:
        """Write ``delivery`` to its targets on this node; how many took it."""

    def send_to(self, socket_id: str, payload: bytes) -> bool:
        """Write one channel payload to one connection of this node."""

    def emit(self, app: App, event: wh.WebhookEvent) -> None:
        """Hand a webhook event to this node's dispatcher."""

    def terminate(self, app_id: str, user_id: str) -> int:
        """Close the user's signed-in connections on this node (4009); how many."""


def is_pending(result: object) -> bool:
    """True when an engine answered with an awaitable (a cluster engine)."""
    return inspect.isawaitable(result)


class Engine(Protocol):
    """What the Pusher shell asks of the deployment (see the module docstring)."""

    def bind(self, local: Local) -> None:
        """The node this engine serves (its deliveries, webhook events, kicks)."""

    def connect(self, app: App, socket_id: str) -> Maybe[int]:
        """Count a connection of ``app``; returns the app's count including it."""

    def disconnect(self, app: App, socket_id: str) -> Maybe[None]: ...

    def join(
        self,
        app: App,
        channel: str,
        socket_id: str,
        member: PresenceMember | None,
        now: float,
        on_joined: Callable[[Joined], None],
    ) -> Maybe[None]:
        """Count a subscription (``member`` for presence channels); announce the user's
        arrival to the channel if it is its first connection there (not to ``socket_id``),
        emit the transitions' webhooks, then call ``on_joined`` at the point of the
        channel's stream from which ``socket_id`` must receive its deliveries.

        Raises (or fails with) ``SubscriptionError`` 4304 when a presence channel is full;
        then nothing changed and ``on_joined`` is not called.
        """

    def leave(self, app: App, channel: str, socket_id: str, user_id: str | None) -> Maybe[None]:
        """Undo a ``join``; announce ``member_removed`` for the user's last connection."""

    def sign_in(
        self, app: App, user_id: str, socket_id: str, watchlist: Iterable[str]
    ) -> Maybe[list[str]]:
        """Count a signed-in connection; on the user's first, tell its watchers (not
        ``socket_id``) it is online. Returns who of ``watchlist`` is online now."""

    def sign_out(
        self, app: App, user_id: str, socket_id: str, watchlist: Iterable[str]
    ) -> Maybe[None]:
        """Undo a ``sign_in``; on the user's last connection, tell its watchers."""

    def members(self, app: App, channel: str) -> Maybe[Mapping[str, Any]]:
        """A presence channel's roster (user_id -> user_info), read now."""

    def publish(self, delivery: Delivery) -> Maybe[int]:
        """Deliver on every node; a single node returns how many connections took it."""

    def trigger(
        self, app: App, delivery: Delivery, event: str, data: str, now: float
    ) -> Maybe[int]:
        """``publish`` of an HTTP API event: cache channels also keep it (with its TTL)."""

    def terminate(self, app: App, user_id: str) -> Maybe[int]:
        """Close the user's signed-in connections on every node (4009)."""

    def webhook(self, app: App, event: wh.WebhookEvent) -> None:
        """A webhook event that is not a transition (client_event, cache_miss)."""

    # queries (the HTTP API): the same answer from every node
    def channel(self, app: App, channel: str) -> Maybe[ChannelState]: ...

    def channels(self, app: App, prefix: str = "") -> Maybe[dict[str, ChannelState]]: ...

    def presence_users(self, app: App, channel: str) -> Maybe[list[str]]: ...

    def cached(self, app: App, channel: str, now: float) -> Maybe[CachedEvent | None]: ...

    def connection_count(self, app: App) -> Maybe[int]: ...


class MemoryBus:
    """Facts and deliveries shared by the memory engines of one process.

    Each ``MemoryEngine`` has its own bus by default (one node). Engines given the same
    bus behave as the nodes of a cluster without Redis: shared facts, deliveries to every
    node. The engine contract suite runs its multi-node cases on it, and a program that
    embeds several gateways can use it too.
    """

    def __init__(self) -> None:
        self.state = MemoryState()
        self.locals: list[Local] = []

    def deliver(self, delivery: Delivery) -> int:
        return sum(local.deliver(delivery) for local in self.locals)

    def terminate(self, app_id: str, user_id: str) -> int:
        return sum(local.terminate(app_id, user_id) for local in self.locals)


class MemoryEngine:
    """Facts in this process (``MemoryState``), deliveries immediate, every answer at once."""

    synchronous = True

    def __init__(self, bus: MemoryBus | None = None) -> None:
        self.bus = bus if bus is not None else MemoryBus()
        self.state = self.bus.state
        self.local: Local | None = None

    def bind(self, local: Local) -> None:
        self.local = local
        self.bus.locals.append(local)

    def deliver(self, delivery: Delivery) -> int:
        return self.bus.deliver(delivery)

    def emit(self, app: App, event: wh.WebhookEvent) -> None:
        if self.local is not None:
            self.local.emit(app, event)

    def connect(self, app: App, socket_id: str) -> int:
        return self.state.connect(app)

    def disconnect(self, app: App, socket_id: str) -> None:
        self.state.disconnect(app)

    def join(
        self,
        app: App,
        channel: str,
        socket_id: str,
        member: PresenceMember | None,
        now: float,
        on_joined: Callable[[Joined], None],
    ) -> None:
        joined = self.state.join(app, channel, socket_id, member, now)
        if joined.first_member:
            assert member is not None
            added = messages.member_added(channel, member.user_id, member.user_info).encode()
            self.deliver(Delivery(Target.CHANNEL, app.id, channel, added, socket_id))
        if app.webhooks:
            if joined.occupied_now:
                self.emit(app, wh.channel_occupied(channel))
            if joined.first_member:
                assert member is not None
                self.emit(app, wh.member_added(channel, member.user_id))
        on_joined(joined)

    def leave(self, app: App, channel: str, socket_id: str, user_id: str | None) -> None:
        left = self.state.leave(app, channel, socket_id, user_id)
        if left.last_member:
            assert user_id is not None
            removed = messages.member_removed(channel, user_id).encode()
            self.deliver(Delivery(Target.CHANNEL, app.id, channel, removed))
            if app.webhooks:
                self.emit(app, wh.member_removed(channel, user_id))
        if left.vacated and app.webhooks:
            self.emit(app, wh.channel_vacated(channel))

    def sign_in(
        self, app: App, user_id: str, socket_id: str, watchlist: Iterable[str]
    ) -> list[str]:
        if self.state.sign_in(app, user_id):
            # Not to this socket: its own answer lists who is online, itself included.
            online = messages.watchlist_events([("online", [user_id])]).encode()
            self.deliver(Delivery(Target.WATCHERS, app.id, user_id, online, socket_id))
        return self.state.online(app, watchlist)

    def sign_out(self, app: App, user_id: str, socket_id: str, watchlist: Iterable[str]) -> None:
        if self.state.sign_out(app, user_id):
            offline = messages.watchlist_events([("offline", [user_id])]).encode()
            self.deliver(Delivery(Target.WATCHERS, app.id, user_id, offline))

    def members(self, app: App, channel: str) -> Mapping[str, Any]:
        return dict(self.state.members(app, channel))

    def publish(self, delivery: Delivery) -> int:
        return self.deliver(delivery)

    def trigger(self, app: App, delivery: Delivery, event: str, data: str, now: float) -> int:
        if delivery.target is Target.CHANNEL and classify(delivery.name).is_cache:
            self.state.cache_put(app, delivery.name, event, data, delivery.payload, now)
        return self.deliver(delivery)

    def terminate(self, app: App, user_id: str) -> int:
        return self.bus.terminate(app.id, user_id)

    def webhook(self, app: App, event: wh.WebhookEvent) -> None:
        self.emit(app, event)

    def channel(self, app: App, channel: str) -> ChannelState:
        return self.state.channel(app, channel)

    def channels(self, app: App, prefix: str = "") -> dict[str, ChannelState]:
        return self.state.channels(app, prefix)

    def presence_users(self, app: App, channel: str) -> list[str]:
        return self.state.presence_users(app, channel)

    def cached(self, app: App, channel: str, now: float) -> CachedEvent | None:
        return self.state.cached(app, channel, now)

    def connection_count(self, app: App) -> int:
        return self.state.connection_count(app)

    def expire(self, now: float) -> int:
        """Drop expired cache entries (the shell calls this periodically)."""
        return self.state.expire(now)

    def sizes(self, app: App) -> Mapping[str, int]:
        return self.state.sizes(app)
