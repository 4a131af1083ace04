"""The Pusher hub: the rules of channels, presence, users, watchlists and cache, sans I/O.

The hub knows subscribers only as opaque, hashable *handles* (the gateway passes its
connection objects; tests pass strings) and never writes to them. Each operation changes
state and returns ``Effects``: what to deliver to whom, what to answer the acting
connection, which webhook events happened. The I/O shell (``gateway.pusher``) performs
them, in this order: deliveries to the others, then replies to the actor (a write to the
actor can close it as a slow consumer, and its close must undo a join the others have
already heard of), then webhooks.

Two kinds of state, kept apart on purpose:

* the **local index** (here): which handles of this node are on a channel, signed in as
  a user, watching a user. Deliveries name a target (a channel, a user's connections, a
  user's watchers) and are resolved against it by ``targets``;
* the **deployment-wide facts** (``state.MemoryState``): occupancy counts, presence
  rosters, users online, cache. Their operations decide the first/last transitions.

On one node the delivery of an ``Effects`` is immediate and local. In a cluster the
facts live in a shared store and each ``Delivery`` travels through a broker to every node,
which resolves it against its own local index: the hub is the seam where that plugs in.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import messages
from . import webhooks as wh
from .apps import App
from .authorize import SignedInUser, SubscriptionGrant, check_client_event
from .cache import CachedEvent
from .channels import ChannelKind, classify, server_to_user_id
from .errors import INVALID_MESSAGE, SubscriptionError
from .ratelimit import rate_limit_error, take
from .state import ChannelState, MemoryState

__all__ = [
    "ChannelState",
    "Delivery",
    "Effects",
    "PusherHub",
    "Session",
    "Target",
]

H = TypeVar("H", bound=Hashable)

MAX_CHANNELS_PER_CONNECTION = 1000  # uvgate's bound; Pusher documents none


class Target(enum.Enum):
    CHANNEL = "channel"  # the subscribers of a channel
    USER = "user"  # the signed-in connections of a user ("#server-to-user-{id}")
    WATCHERS = "watchers"  # the connections whose signed-in user watches a user


@dataclass(frozen=True, slots=True)
class Delivery:
    """One payload for every handle of ``target`` named ``name``, but ``exclude``."""

    target: Target
    app_id: str
    name: str
    payload: bytes  # a UTF-8 JSON text message, framed once by the shell
    exclude: str | None = None  # a socket id that must not receive it


class Effects:
    """What one operation asks the I/O shell to do (see the module docstring)."""

    __slots__ = ("deliveries", "replies", "webhooks")

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.replies: list[str | bytes] = []  # str: a server message; bytes: a channel event
        self.webhooks: list[wh.WebhookEvent] = []

    def __bool__(self) -> bool:
        return bool(self.deliveries or self.replies or self.webhooks)


class Session(Generic[H]):
    """One connection's Pusher state (kept by the shell on its connection).

    ``channels``: channel -> kind (``None`` when none); ``presence``: presence channel ->
    the user id this socket joined as; ``user``: the good ``pusher:signin``;
    ``tokens``/``last``: the client-event token bucket; ``pinged``: a ``pusher:ping`` went
    out for silence and is unanswered. Collections are created on first use: most sockets
    sit on one or two public channels, and there are hundreds of thousands of them.
    """

    __slots__ = (
        "app",
        "channels",
        "handle",
        "last",
        "pinged",
        "presence",
        "socket_id",
        "tokens",
        "user",
    )

    def __init__(self, app: App, handle: H, socket_id: str, now: float) -> None:
        self.app = app
        self.handle = handle
        self.socket_id = socket_id
        self.channels: dict[str, ChannelKind] | None = None
        self.presence: dict[str, str] | None = None
        self.user: SignedInUser | None = None
        self.tokens = float(app.max_client_events_per_second)
        self.last = now
        self.pinged = False

    @property
    def user_id(self) -> str | None:
        user = self.user
        return user.id if user is not None else None

    def kind_of(self, channel: str) -> ChannelKind | None:
        """The kind of ``channel`` if this socket is subscribed to it, else None."""
        channels = self.channels
        return channels.get(channel) if channels else None

    @property
    def has_authenticated(self) -> bool:
        """Signed in, or holding a channel that needed a signature (``require_auth_within``)."""
        if self.user is not None:
            return True
        channels = self.channels
        return bool(channels) and any(k.requires_auth for k in channels.values())  # type: ignore[union-attr]


class _Local(Generic[H]):
    """The local index of one app (see the module docstring)."""

    __slots__ = ("channels", "users", "watchers")

    def __init__(self) -> None:
        self.channels: dict[str, set[H]] = {}  # "#server-to-user-*" excluded: see ``users``
        self.users: dict[str, set[H]] = {}
        self.watchers: dict[str, set[H]] = {}


def _add(index: dict[str, set[H]], key: str, handle: H) -> None:
    have = index.get(key)
    if have is None:
        index[key] = {handle}
    else:
        have.add(handle)


def _discard(index: dict[str, set[H]], key: str, handle: H) -> None:
    have = index.get(key)
    if have is not None:
        have.discard(handle)
        if not have:
            del index[key]


class PusherHub(Generic[H]):
    """Pusher state of every app of one node; see the module docstring."""

    def __init__(
        self,
        state: MemoryState | None = None,
        *,
        max_channels_per_connection: int = MAX_CHANNELS_PER_CONNECTION,
    ) -> None:
        self.state = state if state is not None else MemoryState()
        self.max_channels_per_connection = max_channels_per_connection
        self._local: dict[str, _Local[H]] = {}

    def _index(self, app: App) -> _Local[H]:
        local = self._local.get(app.id)
        if local is None:
            local = self._local[app.id] = _Local()
        return local

    # =========================================================== connections
    def open(self, app: App, handle: H, socket_id: str, now: float) -> Session[H]:
        """A connection of ``app`` opened (the caller checked the quota)."""
        self.state.connect(app)
        return Session(app, handle, socket_id, now)

    def close(self, session: Session[H]) -> Effects:
        """The connection closed: undo every subscription and its signin."""
        effects = Effects()
        if session.channels:
            for channel in list(session.channels):
                self._unsubscribe(session, channel, effects)
        if session.user is not None:
            self._sign_out(session, effects)
        self.state.disconnect(session.app)
        return effects

    # ============================================================ subscribing
    def subscribe(self, session: Session[H], grant: SubscriptionGrant, now: float) -> Effects:
        """Subscribe after ``authorize_subscription`` said yes.

        Raises ``SubscriptionError`` when a presence channel is full (4304) or the socket
        holds ``max_channels_per_connection`` channels already (4300, ``LimitReached``).
        """
        app = session.app
        effects = Effects()
        # Interned: every subscriber's session then shares one key string (idle memory).
        channel, kind = sys.intern(grant.channel), grant.kind
        channels = session.channels
        if channels is not None and channel in channels:
            # Already subscribed (a client retrying): confirm again, change nothing.
            members = self.state.members(app, channel) if kind.is_presence else None
            effects.replies.append(messages.subscription_succeeded(channel, members))
            return effects
        if channels is not None and len(channels) >= self.max_channels_per_connection:
            # Each subscription costs memory: one socket must not hold unbounded sets.
            raise SubscriptionError(
                channel,
                INVALID_MESSAGE,
                "Too many channels on this connection",
                type="LimitReached",
                status=403,
            )
        if kind is ChannelKind.SERVER_TO_USER:
            # Delivered through the user index (``Target.USER``), not a channel set.
            _remember(session, channel, kind)
            effects.replies.append(messages.subscription_succeeded(channel))
            return effects

        member = grant.member
        joined = self.state.join(app, channel, session.socket_id, member)
        if member is not None:
            if session.presence is None:
                session.presence = {}
            session.presence[channel] = member.user_id
        _add(self._index(app).channels, channel, session.handle)
        _remember(session, channel, kind)

        if joined.first_member:
            assert member is not None
            payload = messages.member_added(channel, member.user_id, member.user_info)
            effects.deliveries.append(
                Delivery(Target.CHANNEL, app.id, channel, payload.encode(), session.socket_id)
            )
        hooks = bool(app.webhooks)
        if hooks:
            if joined.occupied_now:
                effects.webhooks.append(wh.channel_occupied(channel))
            if joined.first_member:
                assert member is not None
                effects.webhooks.append(wh.member_added(channel, member.user_id))
        effects.replies.append(messages.subscription_succeeded(channel, joined.members))
        if kind.is_cache:
            entry = self.state.cached(app, channel, now)
            if entry is not None:
                effects.replies.append(entry.frame)
            else:
                effects.replies.append(messages.cache_miss(channel))
                if hooks:
                    effects.webhooks.append(wh.cache_miss(channel))
        return effects

    def unsubscribe(self, session: Session[H], channel: str) -> Effects:
        """Leave ``channel`` (no reply: pusher-protocol.md "pusher:unsubscribe")."""
        effects = Effects()
        self._unsubscribe(session, channel, effects)
        return effects

    def _unsubscribe(self, session: Session[H], channel: str, effects: Effects) -> None:
        channels = session.channels
        kind = channels.pop(channel, None) if channels else None
        if kind is None:
            return
        if not channels:
            session.channels = None
        if kind is ChannelKind.SERVER_TO_USER:
            return
        app = session.app
        _discard(self._index(app).channels, channel, session.handle)
        user_id = session.presence.pop(channel, None) if session.presence else None
        if user_id is not None and not session.presence:
            session.presence = None
        left = self.state.leave(app, channel, session.socket_id, user_id)
        if left.last_member:
            assert user_id is not None
            payload = messages.member_removed(channel, user_id).encode()
            effects.deliveries.append(Delivery(Target.CHANNEL, app.id, channel, payload))
            if app.webhooks:
                effects.webhooks.append(wh.member_removed(channel, user_id))
        if left.vacated and app.webhooks:
            effects.webhooks.append(wh.channel_vacated(channel))

    # ================================================================== users
    def signin(self, session: Session[H], user: SignedInUser) -> Effects:
        """After ``authorize_signin`` said yes: index the user, answer, run the watchlist."""
        effects = Effects()
        if session.user is not None:
            self._sign_out(session, effects)
        app = session.app
        local = self._index(app)
        session.user = user
        _add(local.users, user.id, session.handle)
        if self.state.sign_in(app, user.id):
            # Not to this socket: its own reply below lists who is online, itself included.
            online = messages.watchlist_events([("online", [user.id])]).encode()
            effects.deliveries.append(
                Delivery(Target.WATCHERS, app.id, user.id, online, session.socket_id)
            )
        online_now: list[str] = []
        if user.watchlist:
            watched = list(dict.fromkeys(user.watchlist))
            for other in watched:
                _add(local.watchers, other, session.handle)
            online_now = self.state.online(app, watched)
        # Reply last: pusher-js then subscribes "#server-to-user-{id}".
        effects.replies.append(messages.signin_success(user.user_data))
        if online_now:
            effects.replies.append(messages.watchlist_events([("online", online_now)]))
        return effects

    def _sign_out(self, session: Session[H], effects: Effects) -> None:
        user = session.user
        assert user is not None
        session.user = None
        app = session.app
        local = self._index(app)
        for other in user.watchlist:
            _discard(local.watchers, other, session.handle)
        _discard(local.users, user.id, session.handle)
        if self.state.sign_out(app, user.id):
            offline = messages.watchlist_events([("offline", [user.id])]).encode()
            effects.deliveries.append(Delivery(Target.WATCHERS, app.id, user.id, offline))

    # ========================================================== client events
    def client_event(self, session: Session[H], msg: messages.ClientEvent, now: float) -> Effects:
        """Relay a client event to the channel's other subscribers.

        Raises ``PusherError`` 4301 (non-fatal) when the app, the channel or the rate
        limit forbids it (``authorize.check_client_event``, ``ratelimit.take``).
        """
        app = session.app
        channel, event, data = msg.channel, msg.event, msg.data
        check_client_event(app, msg, session.kind_of(channel))
        ok, session.tokens, session.last = take(
            session.tokens, session.last, now, app.max_client_events_per_second
        )
        if not ok:
            raise rate_limit_error()
        user_id = session.presence.get(channel) if session.presence else None
        effects = Effects()
        payload = messages.channel_event_bytes(event, channel, data, user_id)
        effects.deliveries.append(
            Delivery(Target.CHANNEL, app.id, channel, payload, session.socket_id)
        )
        if app.webhooks:
            effects.webhooks.append(
                wh.client_event(channel, event, data, session.socket_id, user_id)
            )
        return effects

    # ============================================================= publishing
    def publish(
        self,
        app: App,
        channel: str,
        event: str,
        data: str,
        *,
        exclude_socket: str | None = None,
        now: float,
    ) -> Delivery:
        """A server event (HTTP API): cache channels keep it, even with no subscribers;
        ``#server-to-user-{id}`` goes to that user's signed-in connections."""
        payload = messages.channel_event_bytes(event, channel, data)
        kind = classify(channel)
        if kind.is_cache:
            self.state.cache_put(app, channel, event, data, payload, now)
        if kind is ChannelKind.SERVER_TO_USER:
            user_id = server_to_user_id(channel) or ""
            return Delivery(Target.USER, app.id, user_id, payload, exclude_socket)
        return Delivery(Target.CHANNEL, app.id, channel, payload, exclude_socket)

    def targets(self, delivery: Delivery) -> set[H] | None:
        """The local handles a delivery is for (the caller skips ``exclude``)."""
        local = self._local.get(delivery.app_id)
        if local is None:
            return None
        target = delivery.target
        if target is Target.CHANNEL:
            return local.channels.get(delivery.name)
        if target is Target.USER:
            return local.users.get(delivery.name)
        return local.watchers.get(delivery.name)

    def user_handles(self, app: App, user_id: str) -> list[H]:
        """The local connections signed in as ``user_id`` (terminate_connections)."""
        local = self._local.get(app.id)
        have = local.users.get(user_id) if local is not None else None
        return list(have) if have else []

    def sizes(self, app: App) -> dict[str, int]:
        """How many entries each index of ``app`` holds, local and shared (leak checks)."""
        local = self._local.get(app.id)
        sizes = {
            "local_channels": len(local.channels) if local else 0,
            "local_users": len(local.users) if local else 0,
            "local_watchers": len(local.watchers) if local else 0,
        }
        sizes.update(self.state.sizes(app))
        return sizes

    # ================================================================ queries
    def channel_state(self, app: App, channel: str) -> ChannelState:
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
        return self.state.expire(now)


def _remember(session: Session[Any], channel: str, kind: ChannelKind) -> None:
    if session.channels is None:
        session.channels = {channel: kind}
    else:
        session.channels[channel] = kind
