"""Pusher state: what one connection holds (``Session``) and what one app holds (``AppHub``).

Memory is the constraint here: a gateway holds idle connections by the hundred thousand,
and most Pusher sockets sit on one or two public channels. So the per-connection
``Session`` is a ``__slots__`` object whose collections are created on first use
(``None`` until then), and the client-event token bucket is two floats, not an object.

The per-app ``AppHub`` holds the indexes the engine keeps consistent:

* ``channels``  channel -> set of subscribed connections (``#server-to-user-*`` excluded:
  those are delivered through ``users``)
* ``users``     signed-in user id -> that user's connections (``pusher:signin``)
* ``watchers``  user id -> connections whose signed-in user watches it (watchlist)
* ``roster``    presence members, deduplicated per user (``protocol.pusher.presence``)
* ``cache``     last HTTP-triggered event of each cache channel
* ``conns``     every open connection of the app (quota, terminate, activity sweep)

Signed-in users are indexed here, per app, and not in the gateway registry's user index:
user "42" of one app is not user "42" of another (nor a native ``/ws`` user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.pusher.apps import App
from protocol.pusher.cache import EventCache
from protocol.pusher.channels import ChannelKind
from protocol.pusher.presence import PresenceRoster

if TYPE_CHECKING:
    from gateway.connection import Connection
    from protocol.pusher.authorize import SignedInUser


class AppHub:
    """Indexes of one app's connections (see the module docstring)."""

    __slots__ = ("app", "cache", "channels", "conns", "roster", "users", "watchers")

    def __init__(self, app: App) -> None:
        self.app = app
        self.channels: dict[str, set[Connection]] = {}
        self.users: dict[str, set[Connection]] = {}
        self.watchers: dict[str, set[Connection]] = {}
        self.roster = PresenceRoster(app.max_presence_members)
        self.cache = EventCache(ttl=app.cache_ttl)
        self.conns: set[Connection] = set()


class Session:
    """Per-connection Pusher state, kept in ``Connection.session``.

    ``channels``: channel -> kind, the subscriptions of this socket (``None`` when none).
    ``presence``: presence channel -> the user id this socket joined it as.
    ``user``: the result of a good ``pusher:signin``.
    ``tokens``/``last``: the client-event token bucket (``protocol.pusher.ratelimit.take``).
    ``pinged``: a ``pusher:ping`` went out for silence and has not been answered yet.
    """

    __slots__ = ("channels", "hub", "last", "pinged", "presence", "tokens", "user")

    def __init__(self, hub: AppHub, now: float) -> None:
        self.hub = hub
        self.channels: dict[str, ChannelKind] | None = None
        self.presence: dict[str, str] | None = None
        self.user: SignedInUser | None = None
        self.tokens = float(hub.app.max_client_events_per_second)
        self.last = now
        self.pinged = False

    @property
    def app(self) -> App:
        return self.hub.app

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
