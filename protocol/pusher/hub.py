"""The Pusher hub: the rules of channels, presence, users and watchlists, sans I/O.

The hub knows the connections of *this node* as opaque, hashable *handles* (the gateway
passes its connection objects; tests pass strings) and never writes to them. It keeps the
**local index** (which handles are on a channel, signed in as a user, watching a user) and
each connection's ``Session``, and judges what a connection asks.

What must hold for the whole deployment (occupancy, presence counted per user, users
online, the cache, quotas) and delivery to other nodes belong to the engine
(``engine.Engine``). So an operation that changes such facts comes in two steps around the
engine's call, and the shell runs them in order::

    step, replies = hub.subscribing(session, grant)   # JOIN: ask the engine
    engine.join(app, channel, socket_id, member, now, on_joined)
    effects = hub.subscribed(session, grant, joined)  # in on_joined: index, answer

The engine announces what the facts decided (``member_added`` to the channel, ``online``
to watchers) as ``Delivery`` values: a payload for the handles of a target (a channel's
subscribers, a user's connections, a user's watchers) on every node, minus one socket id.
Each node resolves a delivery against its own local index with ``targets``.
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
from .channels import ChannelKind, classify, server_to_user_id
from .errors import INVALID_MESSAGE, SubscriptionError
from .ratelimit import rate_limit_error, take
from .state import Joined

__all__ = [
    "Closing",
    "Delivery",
    "Effects",
    "PusherHub",
    "Session",
    "Step",
    "Target",
    "trigger_delivery",
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
    """What the shell does after an operation: answer the connection, then pass the
    webhook events (client_event, cache_miss) to the engine."""

    __slots__ = ("replies", "webhooks")

    def __init__(self) -> None:
        self.replies: list[str | bytes] = []  # str: a server message; bytes: a channel event
        self.webhooks: list[wh.WebhookEvent] = []


class Step(enum.Enum):
    """What ``subscribing`` decided."""

    JOIN = "join"  # ask the engine to join, then ``subscribed``
    DONE = "done"  # answered: send the replies
    ROSTER = "roster"  # already on this presence channel: answer with the engine's roster


@dataclass(frozen=True, slots=True)
class Closing:
    """What a closed connection leaves for the engine to undo."""

    leaves: list[tuple[str, str | None]]  # (channel, presence user id)
    user: SignedInUser | None  # its signin, if any


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

    __slots__ = ("channels", "connections", "users", "watchers")

    def __init__(self) -> None:
        self.connections = 0  # open on this node (the engine's count is the deployment's)
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
    """The connections of one node and the rules they follow; see the module docstring."""

    def __init__(self, *, max_channels_per_connection: int = MAX_CHANNELS_PER_CONNECTION) -> None:
        self.max_channels_per_connection = max_channels_per_connection
        self._local: dict[str, _Local[H]] = {}

    def _index(self, app: App) -> _Local[H]:
        local = self._local.get(app.id)
        if local is None:
            local = self._local[app.id] = _Local()
        return local

    # =========================================================== connections
    def open(self, app: App, handle: H, socket_id: str, now: float) -> Session[H]:
        """A connection of ``app`` opened (the engine counted it against the quota)."""
        self._index(app).connections += 1
        return Session(app, handle, socket_id, now)

    def closing(self, session: Session[H]) -> Closing:
        """The connection closed: drop it from every local index; returns what the
        engine must undo (its subscriptions, its signin). Called once per ``open``."""
        self._index(session.app).connections -= 1
        leaves: list[tuple[str, str | None]] = []
        if session.channels:
            for channel in list(session.channels):
                leave = self.unsubscribe(session, channel)
                if leave is not None:
                    leaves.append(leave)
        user = self.signing_in(session, None)
        return Closing(leaves, user)

    # ============================================================ subscribing
    def subscribing(self, session: Session[H], grant: SubscriptionGrant) -> tuple[Step, list[str]]:
        """Before the engine's ``join``: ``JOIN``; or ``DONE`` with the replies that settle
        the request at once (already subscribed, ``#server-to-user-*``); or ``ROSTER``
        (already on this presence channel: confirm again with the engine's roster).

        Raises ``SubscriptionError`` (4300, ``LimitReached``) when the socket holds
        ``max_channels_per_connection`` channels already.
        """
        channel, kind = grant.channel, grant.kind
        channels = session.channels
        if channels is not None and channel in channels:
            # Already subscribed (a client retrying): confirm again, change nothing.
            if kind.is_presence:
                return Step.ROSTER, []
            return Step.DONE, [messages.subscription_succeeded(channel)]
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
            _remember(session, sys.intern(channel), kind)
            return Step.DONE, [messages.subscription_succeeded(channel)]
        return Step.JOIN, []

    def subscribed(self, session: Session[H], grant: SubscriptionGrant, joined: Joined) -> Effects:
        """After the engine's ``join``: index the socket, answer it (roster, cache)."""
        # Interned: every subscriber's session then shares one key string (idle memory).
        channel, kind = sys.intern(grant.channel), grant.kind
        app = session.app
        member = grant.member
        if member is not None:
            if session.presence is None:
                session.presence = {}
            session.presence[channel] = member.user_id
        _add(self._index(app).channels, channel, session.handle)
        _remember(session, channel, kind)
        effects = Effects()
        effects.replies.append(messages.subscription_succeeded(channel, joined.members))
        if kind.is_cache:
            if joined.cached is not None:
                effects.replies.append(joined.cached.frame)
            else:
                effects.replies.append(messages.cache_miss(channel))
                if app.webhooks:
                    effects.webhooks.append(wh.cache_miss(channel))
        return effects

    def unsubscribe(self, session: Session[H], channel: str) -> tuple[str, str | None] | None:
        """Leave ``channel`` here (no reply: pusher-protocol.md "pusher:unsubscribe").
        Returns ``(channel, presence user id)`` for the engine's ``leave``, or None."""
        channels = session.channels
        kind = channels.pop(channel, None) if channels else None
        if kind is None:
            return None
        if not channels:
            session.channels = None
        if kind is ChannelKind.SERVER_TO_USER:
            return None
        _discard(self._index(session.app).channels, channel, session.handle)
        user_id = session.presence.pop(channel, None) if session.presence else None
        if user_id is not None and not session.presence:
            session.presence = None
        return (channel, user_id)

    # ================================================================== users
    def signing_in(self, session: Session[H], user: SignedInUser | None) -> SignedInUser | None:
        """Before the engine's ``sign_in`` (or at close, ``user=None``): drop the socket's
        previous signin from the local indexes; returns it (for the engine's
        ``sign_out``), or None."""
        previous = session.user
        if previous is None:
            return None
        session.user = None
        local = self._index(session.app)
        for other in previous.watchlist:
            _discard(local.watchers, other, session.handle)
        _discard(local.users, previous.id, session.handle)
        return previous

    def signed_in(self, session: Session[H], user: SignedInUser, online: list[str]) -> Effects:
        """After the engine's ``sign_in``: index the user and its watchlist, answer.
        ``online``: who of the watchlist the engine says is online."""
        local = self._index(session.app)
        session.user = user
        _add(local.users, user.id, session.handle)
        for other in dict.fromkeys(user.watchlist):
            _add(local.watchers, other, session.handle)
        effects = Effects()
        # pusher-js then subscribes "#server-to-user-{id}".
        effects.replies.append(messages.signin_success(user.user_data))
        if online:
            effects.replies.append(messages.watchlist_events([("online", online)]))
        return effects

    # ========================================================== client events
    def client_event(
        self, session: Session[H], msg: messages.ClientEvent, now: float
    ) -> tuple[Delivery, wh.WebhookEvent | None]:
        """A client event to relay to the channel's other subscribers (every node), and
        its webhook event (None when the app has no webhooks).

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
        payload = messages.channel_event_bytes(event, channel, data, user_id)
        delivery = Delivery(Target.CHANNEL, app.id, channel, payload, session.socket_id)
        hook = None
        if app.webhooks:
            hook = wh.client_event(channel, event, data, session.socket_id, user_id)
        return delivery, hook

    # ================================================================ delivery
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

    def user_handles(self, app_id: str, user_id: str) -> list[H]:
        """The local connections signed in as ``user_id`` (terminate_connections)."""
        local = self._local.get(app_id)
        have = local.users.get(user_id) if local is not None else None
        return list(have) if have else []

    def connections(self) -> dict[str, int]:
        """App id -> connections open on this node (apps that ever had one)."""
        return {app_id: local.connections for app_id, local in self._local.items()}

    def sizes(self, app: App) -> dict[str, int]:
        """How many entries each local index of ``app`` holds (leak checks)."""
        local = self._local.get(app.id)
        return {
            "local_channels": len(local.channels) if local else 0,
            "local_users": len(local.users) if local else 0,
            "local_watchers": len(local.watchers) if local else 0,
        }


def trigger_delivery(
    app: App, channel: str, event: str, data: str, exclude_socket: str | None = None
) -> Delivery:
    """A server event (HTTP API); ``#server-to-user-{id}`` goes to that user's
    signed-in connections, every other channel to its subscribers."""
    payload = messages.channel_event_bytes(event, channel, data)
    if classify(channel) is ChannelKind.SERVER_TO_USER:
        user_id = server_to_user_id(channel) or ""
        return Delivery(Target.USER, app.id, user_id, payload, exclude_socket)
    return Delivery(Target.CHANNEL, app.id, channel, payload, exclude_socket)


def _remember(session: Session[Any], channel: str, kind: ChannelKind) -> None:
    if session.channels is None:
        session.channels = {channel: kind}
    else:
        session.channels[channel] = kind
