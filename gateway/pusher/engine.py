"""The Pusher engine: channels, presence, users and cache of every app, on one gateway.

The WebSocket handler (``gateway.pusher.handler``) calls ``subscribe`` / ``unsubscribe``
/ ``signin`` / ``client_event`` / ``closed``; the HTTP API (``gateway.pusher.api``) calls
the public query and publish methods below. Everything is synchronous and in-process:
the decisions come from the sans-I/O layer (``protocol.pusher``), the engine only keeps
the indexes (``session.AppHub``) and writes frames.

Hot path: ``publish`` encodes the event once (``messages.channel_event_bytes``), frames it
once, and writes the same bytes to every subscriber (encode once, write many).

``terminate_user`` closes with 4009 "You got disconnected by the app.", after a
``pusher:error`` with the same code, as soketi and sockudo do: 4000-4099 tells pusher-js
not to reconnect (pusher-protocol.md "Close / error codes"), which is the point of a kick
(a reconnecting pusher-js would sign the user straight back in).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.pusher.session import AppHub, Session
from protocol.frames import OP_TEXT, encode_frame
from protocol.pusher import messages
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App, AppStore
from protocol.pusher.authorize import SignedInUser, SubscriptionGrant
from protocol.pusher.cache import CachedEvent
from protocol.pusher.channels import ChannelKind, classify, server_to_user_id
from protocol.pusher.errors import (
    INVALID_MESSAGE,
    PONG_NOT_RECEIVED,
    UNAUTHORIZED,
    SubscriptionError,
)

if TYPE_CHECKING:
    from gateway.connection import Connection
    from gateway.server import Gateway

TERMINATED = "You got disconnected by the app."
NO_PONG = "Pong reply not received"
PONG_TIMEOUT = 30.0  # pusher-protocol.md: pusher-js waits 30 s for a pong; so do we
MAX_CHANNELS_PER_CONNECTION = 1000  # uvgate's bound; Pusher documents none
SWEEP_INTERVAL = 5.0  # seconds between activity / cache sweeps (one pass over the sockets)


class WebhookSink(Protocol):
    """Receives webhook events as they happen (set by the webhook dispatcher).

    ``emit`` is synchronous, cheap and never raises; the engine calls it only for apps
    with webhooks configured. ``event`` is built with ``protocol.pusher.webhooks``.
    """

    def emit(self, app: App, event: wh.WebhookEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelState:
    occupied: bool
    subscription_count: int
    user_count: int | None = None  # presence channels only


_VACANT = ChannelState(False, 0)


def text_frame(text: str) -> bytes:
    return encode_frame(OP_TEXT, text.encode())


class PusherEngine:
    def __init__(
        self, gateway: Gateway, store: AppStore, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.gw = gateway
        self.store = store
        self.now = now
        self.webhooks: WebhookSink | None = None
        self.pong_timeout = PONG_TIMEOUT
        self.sweep_interval = SWEEP_INTERVAL
        self.max_channels_per_connection = MAX_CHANNELS_PER_CONNECTION
        self._hubs: dict[str, AppHub] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        gateway.start_hooks.append(self._start)
        gateway.shutdown_hooks.append(self._stop)

    # ================================================================ public API
    def hub(self, app: App) -> AppHub:
        hub = self._hubs.get(app.id)
        if hub is None:
            hub = self._hubs[app.id] = AppHub(app)
        return hub

    def publish(
        self, app: App, channel: str, event: str, data: str, *, exclude_socket: str | None = None
    ) -> int:
        """Deliver a server event to the local subscribers of ``channel``; return how many.

        Cache channels keep it (even with no subscribers) for their next subscribers;
        ``#server-to-user-{id}`` goes to that user's signed-in connections.
        """
        hub = self.hub(app)
        payload = messages.channel_event_bytes(event, channel, data)
        kind = classify(channel)
        if kind.is_cache:
            hub.cache.put(channel, event, data, payload, self.now())
        if kind is ChannelKind.SERVER_TO_USER:
            user_id = server_to_user_id(channel)
            conns = hub.users.get(user_id) if user_id else None
        else:
            conns = hub.channels.get(channel)
        if not conns:
            return 0
        return _write_all(conns, encode_frame(OP_TEXT, payload), exclude_socket)

    def channel_state(self, app: App, channel: str) -> ChannelState:
        hub = self._hubs.get(app.id)
        conns = hub.channels.get(channel) if hub is not None else None
        if not conns:
            return _VACANT
        assert hub is not None
        users = hub.roster.count(channel) if classify(channel).is_presence else None
        return ChannelState(True, len(conns), users)

    def channels(self, app: App, prefix: str = "") -> dict[str, ChannelState]:
        """Occupied channels whose name starts with ``prefix``."""
        hub = self._hubs.get(app.id)
        if hub is None:
            return {}
        out: dict[str, ChannelState] = {}
        for name, conns in hub.channels.items():
            if name.startswith(prefix):
                users = hub.roster.count(name) if classify(name).is_presence else None
                out[name] = ChannelState(True, len(conns), users)
        return out

    def presence_users(self, app: App, channel: str) -> list[str]:
        hub = self._hubs.get(app.id)
        return hub.roster.user_ids(channel) if hub is not None else []

    def cached(self, app: App, channel: str) -> CachedEvent | None:
        hub = self._hubs.get(app.id)
        return hub.cache.get(channel, self.now()) if hub is not None else None

    def terminate_user(self, app: App, user_id: str) -> int:
        """Close the user's signed-in connections with 4009; return how many."""
        hub = self._hubs.get(app.id)
        conns = hub.users.get(user_id) if hub is not None else None
        if not conns:
            return 0
        error = text_frame(messages.error(TERMINATED, UNAUTHORIZED))
        targets = list(conns)
        for conn in targets:
            conn.write_frame(error)
            conn.close(UNAUTHORIZED, TERMINATED)
        return len(targets)

    def connection_count(self, app: App) -> int:
        hub = self._hubs.get(app.id)
        return len(hub.conns) if hub is not None else 0

    # ======================================================= connection life cycle
    def opened(self, conn: Connection, app: App) -> Session:
        hub = self.hub(app)
        session = Session(hub, self.now())
        conn.session = session
        hub.conns.add(conn)
        return session

    def closed(self, conn: Connection, session: Session) -> None:
        """The socket left the open state: undo every index entry it made."""
        hub = session.hub
        hub.conns.discard(conn)
        if session.channels:
            for channel in list(session.channels):
                self.unsubscribe(conn, session, channel)
        if session.user is not None:
            self._signout(conn, session)

    # ================================================================ subscribing
    def subscribe(self, conn: Connection, session: Session, grant: SubscriptionGrant) -> None:
        """Subscribe after ``authorize_subscription`` said yes.

        Raises ``SubscriptionError`` when a presence channel is full (4304) or the socket
        holds ``max_channels_per_connection`` channels already (4300, ``LimitReached``).
        """
        hub = session.hub
        app = hub.app
        # Interned: every subscriber's session then shares one key string (idle memory).
        channel, kind = sys.intern(grant.channel), grant.kind
        channels = session.channels
        if channels is not None and channel in channels:
            # Already subscribed (a client retrying): confirm again, change nothing.
            members = hub.roster.members(channel) if kind.is_presence else None
            conn.send_text(messages.subscription_succeeded(channel, members))
            return
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
            # Delivered through the user index (``publish``), not a channel set.
            self._remember(session, channel, kind)
            conn.send_text(messages.subscription_succeeded(channel))
            return

        first_member = False
        member = grant.member
        if member is not None:
            first_member = hub.roster.add(channel, conn.id, member.user_id, member.user_info)
            if session.presence is None:
                session.presence = {}
            session.presence[channel] = member.user_id
        subscribers = hub.channels.get(channel)
        occupied_now = subscribers is None
        if subscribers is None:
            subscribers = hub.channels[channel] = set()
        subscribers.add(conn)
        self._remember(session, channel, kind)

        # The others first, the joiner last: a write to the joiner can close it (slow
        # consumer), and its close must then undo a join the others already heard of.
        if first_member:
            assert member is not None
            frame = text_frame(messages.member_added(channel, member.user_id, member.user_info))
            _write_all(subscribers, frame, conn.id)
        hooks = app.webhooks and self.webhooks is not None
        if hooks:
            if occupied_now:
                self._emit(app, wh.channel_occupied(channel))
            if first_member:
                assert member is not None
                self._emit(app, wh.member_added(channel, member.user_id))

        members = hub.roster.members(channel) if member is not None else None
        conn.send_text(messages.subscription_succeeded(channel, members))
        if kind.is_cache:
            entry = hub.cache.get(channel, self.now())
            if entry is not None:
                conn.write_frame(encode_frame(OP_TEXT, entry.frame))
            else:
                conn.send_text(messages.cache_miss(channel))
                if hooks:
                    self._emit(app, wh.cache_miss(channel))

    @staticmethod
    def _remember(session: Session, channel: str, kind: ChannelKind) -> None:
        if session.channels is None:
            session.channels = {channel: kind}
        else:
            session.channels[channel] = kind

    def unsubscribe(self, conn: Connection, session: Session, channel: str) -> None:
        """Leave ``channel`` (no reply: pusher-protocol.md "pusher:unsubscribe")."""
        channels = session.channels
        kind = channels.pop(channel, None) if channels else None
        if kind is None:
            return
        if not channels:
            session.channels = None
        if kind is ChannelKind.SERVER_TO_USER:
            return
        hub = session.hub
        app = hub.app
        subscribers = hub.channels.get(channel)
        vacated = False
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del hub.channels[channel]
                vacated = True
        user_id = session.presence.pop(channel, None) if session.presence else None
        if user_id is not None:
            if not session.presence:
                session.presence = None
            if hub.roster.remove(channel, conn.id, user_id):
                if subscribers:
                    _write_all(subscribers, text_frame(messages.member_removed(channel, user_id)))
                if app.webhooks and self.webhooks is not None:
                    self._emit(app, wh.member_removed(channel, user_id))
        if vacated and app.webhooks and self.webhooks is not None:
            self._emit(app, wh.channel_vacated(channel))

    # ================================================================== users
    def signin(self, conn: Connection, session: Session, user: SignedInUser) -> None:
        """After ``authorize_signin`` said yes: index the user, answer, run the watchlist."""
        hub = session.hub
        if session.user is not None:
            self._signout(conn, session)
        session.user = user
        conns = hub.users.get(user.id)
        first = conns is None
        if conns is None:
            conns = hub.users[user.id] = set()
        conns.add(conn)
        if first:
            watchers = hub.watchers.get(user.id)
            if watchers:
                _write_all(watchers, text_frame(messages.watchlist_events([("online", [user.id])])))
        online: list[str] = []
        if user.watchlist:
            watched = list(dict.fromkeys(user.watchlist))
            for other in watched:
                have = hub.watchers.get(other)
                if have is None:
                    hub.watchers[other] = {conn}
                else:
                    have.add(conn)
            online = [other for other in watched if other in hub.users]
        # Reply last (see ``subscribe``): pusher-js then subscribes "#server-to-user-{id}".
        conn.send_text(messages.signin_success(user.user_data))
        if online:
            conn.send_text(messages.watchlist_events([("online", online)]))

    def _signout(self, conn: Connection, session: Session) -> None:
        hub = session.hub
        user = session.user
        assert user is not None
        session.user = None
        for other in user.watchlist:
            have = hub.watchers.get(other)
            if have is not None:
                have.discard(conn)
                if not have:
                    del hub.watchers[other]
        conns = hub.users.get(user.id)
        if conns is None:
            return
        conns.discard(conn)
        if conns:
            return
        del hub.users[user.id]
        watchers = hub.watchers.get(user.id)
        if watchers:
            _write_all(watchers, text_frame(messages.watchlist_events([("offline", [user.id])])))

    # ============================================================= client events
    def relay_client_event(
        self, conn: Connection, session: Session, channel: str, event: str, data: str
    ) -> int:
        """Relay an allowed client event to the channel's other subscribers."""
        hub = session.hub
        user_id = session.presence.get(channel) if session.presence else None
        subscribers = hub.channels.get(channel)
        sent = 0
        if subscribers:
            frame = encode_frame(
                OP_TEXT, messages.channel_event_bytes(event, channel, data, user_id)
            )
            sent = _write_all(subscribers, frame, conn.id)
        app = hub.app
        if app.webhooks and self.webhooks is not None:
            self._emit(app, wh.client_event(channel, event, data, conn.id, user_id))
        return sent

    # ================================================================ webhooks
    def _emit(self, app: App, event: wh.WebhookEvent) -> None:
        sink = self.webhooks
        if sink is not None:
            sink.emit(app, event)

    # ========================================================= activity sweep
    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self._interval(), self._sweep)

    async def _stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _interval(self) -> float:
        cfg = self.gw.config
        interval = self.sweep_interval
        if cfg.ping_interval > 0 and cfg.idle_timeout > 0:
            interval = min(interval, cfg.idle_timeout / 4)
        return max(interval, 0.05)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.sweep(self.gw.now)
        finally:
            if self._sweeper is not None:
                self._sweeper = loop.call_later(self._interval(), self._sweep)

    def sweep(self, now: float) -> None:
        """Ping silent sockets, close unresponsive ones with 4201, drop expired cache.

        pusher-protocol.md: after ``activity_timeout`` of silence a ``pusher:ping`` goes
        out; no answer within ``pong_timeout`` closes with 4201 (pong not received). The
        core's heartbeat would close the same socket with 1001 at ``idle_timeout``, a
        code pusher-js does not understand, so our close comes first: at most
        ``idle_timeout`` minus two sweeps when the core heartbeat is on.
        """
        cfg = self.gw.config
        cap = None
        interval = self._interval()
        if cfg.ping_interval > 0 and cfg.idle_timeout > 0:
            cap = max(cfg.idle_timeout - 2 * interval, interval)
        mono = self.now()
        ping = None
        for hub in self._hubs.values():
            hub.cache.sweep(mono)
            if not hub.conns:
                continue
            ping_after = float(hub.app.activity_timeout)
            close_after = ping_after + self.pong_timeout
            if cap is not None and close_after > cap:
                close_after = cap
                ping_after = min(ping_after, cap / 2)
            # Read-only pass over the live set; act afterwards (a write can close a
            # slow consumer, which leaves ``hub.conns`` mid-iteration).
            stale: list[Connection] = []
            due: list[Connection] = []
            for conn in hub.conns:
                silent = now - conn.last_seen
                session = conn.session
                if silent < ping_after:
                    if session.pinged:
                        session.pinged = False
                elif silent >= close_after:
                    stale.append(conn)
                elif not session.pinged:
                    due.append(conn)
            if due:
                if ping is None:
                    ping = text_frame(messages.PING)
                for conn in due:
                    conn.session.pinged = True
                    conn.write_frame(ping)
            if stale:
                error = text_frame(messages.error(NO_PONG, PONG_NOT_RECEIVED))
                for conn in stale:
                    conn.write_frame(error)
                    conn.close(PONG_NOT_RECEIVED, NO_PONG)


def _write_all(conns: Iterable[Connection], frame: bytes, exclude: str | None = None) -> int:
    """Write ``frame`` to each connection but ``exclude`` (an id); return how many took it.

    Iterates over a snapshot: a write can close a slow consumer, which unsubscribes it
    from the very set being iterated.
    """
    sent = 0
    if exclude is None:
        for conn in tuple(conns):
            if conn.write_frame(frame):
                sent += 1
    else:
        for conn in tuple(conns):
            if conn.id != exclude and conn.write_frame(frame):
                sent += 1
    return sent
