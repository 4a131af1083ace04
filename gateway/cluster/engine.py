"""The cluster engine: Pusher's deployment-wide facts in Redis, delivery through PUB/SUB.

Every fact is changed by one call of ``scripts.lua`` (``Link.call``), atomically, so
"first connection of this user", "last subscriber", "node dead" are decided once for the
whole cluster. Deliveries go out with one PUBLISH per channel (whatever the number of
subscribers and nodes) and every node, the origin included, delivers from the copy that
comes back: one order per channel for everyone.

A join is placed in the channel's stream by the script, which publishes a ``J`` marker
(``protocol.cluster``): the joiner is answered (``subscription_succeeded``, roster, cached
event) when both the script's result and its marker are in, and gets exactly what the
channel carried after the marker. Nothing is lost in the window and nothing doubles.

The node keeps a *ledger* of what it registered (connections, subscriptions, presence
memberships, signed-in users). After Redis comes back, or after this node's claim was
lost (a partition long enough to be reaped), ``resync`` compares the ledger with what
Redis holds for the node and applies the difference through the same scripts, so the
announcements and webhooks of every change are made, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson

from gateway.cluster.link import Link, Unavailable
from gateway.cluster.pubsub import Subscriber
from protocol import cluster as wire
from protocol.pusher import messages
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App
from protocol.pusher.cache import CachedEvent
from protocol.pusher.channels import classify, is_valid_channel_name
from protocol.pusher.engine import Local
from protocol.pusher.errors import presence_full
from protocol.pusher.hub import Delivery, Target
from protocol.pusher.presence import PresenceMember
from protocol.pusher.state import ChannelState, Joined

log = logging.getLogger("uvgate.cluster")

MARKER_WAIT = 5.0  # seconds a join waits for its marker before it is answered anyway
MAX_QUEUED = 10_000  # deliveries kept for one joiner between its marker and its answer
_TARGET_PART = {Target.CHANNEL: "c", Target.USER: "u", Target.WATCHERS: "w"}


class ClusterStats:
    __slots__ = (
        "bad_messages",
        "dropped",
        "joins_without_marker",
        "received",
        "resyncs",
        "sent",
    )

    def __init__(self) -> None:
        self.sent = 0  # messages published by this node
        self.received = 0  # messages received from Redis PUB/SUB
        self.dropped = 0  # cross-node messages lost while Redis was unreachable
        self.bad_messages = 0  # messages on our channels that were not ours
        self.resyncs = 0  # times this node's state was registered again
        self.joins_without_marker = 0


@dataclass(slots=True, eq=False)
class _Pending:
    """A joiner between its script call and its answer."""

    on_joined: Callable[[Joined], None]
    done: asyncio.Future[None]
    joined: Joined | None = None
    marker: bool = False
    queue: list[wire.Deliver] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Sub:
    """A PUB/SUB channel this node listens to, and why."""

    target: Target
    app_id: str
    name: str
    interest: int = 0
    ready: asyncio.Future[None] | None = None
    pending: dict[str, _Pending] = field(default_factory=dict)


class _Ledger:
    """What this node registered in Redis: the truth a resync restores."""

    __slots__ = ("conns", "members", "subs", "users")

    def __init__(self) -> None:
        self.conns: dict[str, int] = {}  # app -> connections
        self.subs: dict[tuple[str, str], int] = {}  # (app, channel) -> subscriptions
        self.members: dict[tuple[str, str, str], tuple[str, str]] = {}  # -> (user, info)
        self.users: dict[tuple[str, str], int] = {}  # (app, user) -> signed-in conns

    @staticmethod
    def bump(table: dict[Any, int], key: Any, delta: int) -> None:
        value = table.get(key, 0) + delta
        if value > 0:
            table[key] = value
        else:
            table.pop(key, None)


class RedisEngine:
    """``protocol.pusher.engine.Engine`` for a cluster of nodes sharing one Redis."""

    synchronous = False

    def __init__(
        self,
        link: Link,
        subscriber: Subscriber,
        node: str,
        *,
        webhook_delay: float = 3.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.link = link
        self.subscriber = subscriber
        self.node = node  # this node's key (node id * 100 + worker)
        self.delay_ms = int(webhook_delay * 1000)
        self.stats = ClusterStats()
        self.local: Local | None = None
        self.apps: Callable[[str], App | None] = lambda app_id: None
        self._subs: dict[bytes, _Sub] = {}
        self._ledger = _Ledger()
        self._prefix = link.prefix
        # True once this node's state is registered (after start, after every outage).
        self.synced = False
        # Presence departures that could not reach Redis: (app, channel, user).
        self._departed: set[tuple[str, str, str]] = set()

    def bind(self, local: Local) -> None:
        self.local = local

    # ================================================================ naming
    def _channel(self, target: Target, app_id: str, name: str) -> bytes:
        return f"{self._prefix}:app:{app_id}:{_TARGET_PART[target]}:{name}".encode()

    def _cache_key(self, app_id: str, channel: str) -> str:
        return f"{self._prefix}:app:{app_id}:cache:{channel}"

    @property
    def up(self) -> bool:
        return self.link.up and self.subscriber.up and self.synced

    def _check_up(self) -> None:
        if not self.up:
            raise Unavailable("Redis is unreachable")

    # ============================================================ interest
    async def _want(self, target: Target, app_id: str, name: str) -> _Sub:
        """Listen to the PUB/SUB channel of a target (once Redis confirmed it)."""
        channel = self._channel(target, app_id, name)
        sub = self._subs.get(channel)
        if sub is None:
            sub = self._subs[channel] = _Sub(target, app_id, name)
        sub.interest += 1
        if sub.ready is None:
            sub.ready = asyncio.get_running_loop().create_future()
            try:
                await self.subscriber.subscribe(channel)
            except Exception as exc:
                ready, sub.ready = sub.ready, None
                ready.set_exception(Unavailable(str(exc)))
                ready.exception()  # retrieved: the waiters below get their own
                self._release(channel)
                raise Unavailable(f"cannot subscribe: {exc}") from exc
            sub.ready.set_result(None)
        elif not sub.ready.done():
            try:
                await asyncio.shield(sub.ready)
            except Exception:
                self._release(channel)
                raise
        return sub

    def _release(self, channel: bytes) -> None:
        sub = self._subs.get(channel)
        if sub is None:
            return
        sub.interest -= 1
        if sub.interest <= 0 and not sub.pending:
            del self._subs[channel]
            self.subscriber.unsubscribe(channel)

    def listening(self) -> int:
        return len(self._subs)

    # ============================================================ messages
    def on_message(self, channel: bytes, data: bytes) -> None:
        """A message from PUB/SUB (in the order Redis sent it)."""
        self.stats.received += 1
        sub = self._subs.get(channel)
        if sub is None:
            return  # arrived after we stopped listening
        try:
            message = wire.decode(data)
        except wire.ClusterMessageError:
            self.stats.bad_messages += 1
            return
        local = self.local
        if local is None:
            return
        if type(message) is wire.Deliver:
            for pending in sub.pending.values():
                if pending.marker:
                    if len(pending.queue) < MAX_QUEUED:
                        pending.queue.append(message)
                    else:
                        self.stats.dropped += 1  # a joiner that never got its answer
            local.deliver(
                Delivery(sub.target, sub.app_id, sub.name, message.payload, message.exclude)
            )
        elif type(message) is wire.Joined:
            if message.first:
                announce = wire.Deliver(message.payload, message.socket_id)
                for pending in sub.pending.values():
                    if pending.marker:
                        pending.queue.append(announce)
                local.deliver(
                    Delivery(sub.target, sub.app_id, sub.name, message.payload, message.socket_id)
                )
            joiner = sub.pending.get(message.socket_id)
            if joiner is not None:
                joiner.marker = True
                if joiner.joined is not None:
                    self._activate(sub, message.socket_id, joiner)
        elif type(message) is wire.Terminate:
            local.terminate(sub.app_id, sub.name)

    def _activate(self, sub: _Sub, socket_id: str, pending: _Pending) -> None:
        """Answer the joiner, then give it what the channel carried since its marker."""
        sub.pending.pop(socket_id, None)
        joined = pending.joined
        assert joined is not None
        try:
            pending.on_joined(joined)
            local = self.local
            if local is not None:
                for message in pending.queue:
                    if message.exclude != socket_id:
                        local.send_to(socket_id, message.payload)
        finally:
            if not pending.done.done():
                pending.done.set_result(None)

    # ========================================================= connections
    def connect(self, app: App, socket_id: str) -> Awaitable[int]:
        return self._connect(app)

    async def _connect(self, app: App) -> int:
        self._check_up()
        count = int(await self.link.call("connect", app.id, self.node))
        _Ledger.bump(self._ledger.conns, app.id, 1)
        return count

    def disconnect(self, app: App, socket_id: str) -> Awaitable[None]:
        _Ledger.bump(self._ledger.conns, app.id, -1)
        return self._quietly("disconnect", app.id, self.node)

    async def _quietly(self, op: str, *args: Any) -> None:
        """An undo that must not fail the caller: when Redis is down, resync does it."""
        if not self.up:
            return
        try:
            await self.link.call(op, *args)
        except Unavailable:
            pass

    # ============================================================== channels
    def join(
        self,
        app: App,
        channel: str,
        socket_id: str,
        member: PresenceMember | None,
        now: float,
        on_joined: Callable[[Joined], None],
    ) -> Awaitable[None]:
        return self._join(app, channel, socket_id, member, on_joined)

    async def _join(
        self,
        app: App,
        channel: str,
        socket_id: str,
        member: PresenceMember | None,
        on_joined: Callable[[Joined], None],
    ) -> None:
        self._check_up()
        sub = await self._want(Target.CHANNEL, app.id, channel)
        key = self._channel(Target.CHANNEL, app.id, channel)
        pending = _Pending(on_joined, asyncio.get_running_loop().create_future())
        sub.pending[socket_id] = pending
        user = member.user_id if member is not None else ""
        info = orjson.dumps(member.user_info).decode() if member is not None else ""
        added = b""
        if member is not None:
            added = messages.member_added(channel, member.user_id, member.user_info).encode()
        try:
            reply = await self.link.call(
                "join",
                app.id,
                channel,
                self.node,
                socket_id,
                user,
                info,
                app.max_presence_members,
                "1" if app.webhooks else "0",
                added,
                "1" if classify(channel).is_cache else "0",
            )
        except BaseException:
            sub.pending.pop(socket_id, None)
            self._release(key)
            raise
        if reply[0] == b"full":
            sub.pending.pop(socket_id, None)
            self._release(key)
            raise presence_full(channel)
        _, total, first, roster, cached = reply
        members = None
        if member is not None:
            members = {
                _text(roster[i]): orjson.loads(roster[i + 1]) for i in range(0, len(roster), 2)
            }
            self._ledger.members[(app.id, channel, socket_id)] = (user, info)
        _Ledger.bump(self._ledger.subs, (app.id, channel), 1)
        pending.joined = Joined(int(total) == 1, bool(first), members, _cached_event(cached))
        if pending.marker:
            self._activate(sub, socket_id, pending)
        else:
            try:
                await asyncio.wait_for(asyncio.shield(pending.done), MARKER_WAIT)
            except TimeoutError:
                # The marker was lost (PUB/SUB dropped meanwhile): answer anyway.
                self.stats.joins_without_marker += 1
                self._activate(sub, socket_id, pending)

    def leave(self, app: App, channel: str, socket_id: str, user_id: str | None) -> Awaitable[None]:
        self._ledger.members.pop((app.id, channel, socket_id), None)
        _Ledger.bump(self._ledger.subs, (app.id, channel), -1)
        return self._leave(app, channel, socket_id, user_id)

    async def _leave(self, app: App, channel: str, socket_id: str, user_id: str | None) -> None:
        if user_id is not None and not self.up:
            # Told to the others at the next resync (``gone``), if Redis lost the member.
            self._departed.add((app.id, channel, user_id))
        try:
            await self._quietly(
                "leave",
                app.id,
                channel,
                self.node,
                socket_id,
                "1" if app.webhooks else "0",
                self.delay_ms,
            )
        finally:
            self._release(self._channel(Target.CHANNEL, app.id, channel))

    def members(self, app: App, channel: str) -> Awaitable[Mapping[str, Any]]:
        return self._members(app, channel)

    async def _members(self, app: App, channel: str) -> Mapping[str, Any]:
        self._check_up()
        raw = await self.link.redis.hgetall(f"{self._prefix}:app:{app.id}:p:{channel}:i")
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    # ================================================================= users
    def sign_in(
        self, app: App, user_id: str, socket_id: str, watchlist: Iterable[str]
    ) -> Awaitable[list[str]]:
        return self._sign_in(app, user_id, socket_id, list(watchlist))

    async def _sign_in(
        self, app: App, user_id: str, socket_id: str, watchlist: list[str]
    ) -> list[str]:
        self._check_up()
        wanted = [(Target.USER, user_id)] + [(Target.WATCHERS, w) for w in watchlist]
        got: list[bytes] = []
        try:
            for target, name in wanted:
                await self._want(target, app.id, name)
                got.append(self._channel(target, app.id, name))
            online = messages.watchlist_events([("online", [user_id])]).encode()
            reply = await self.link.call(
                "sign_in",
                app.id,
                self.node,
                user_id,
                wire.encode_deliver(online, socket_id),
                *watchlist,
            )
        except BaseException:
            for channel in got:
                self._release(channel)
            raise
        _Ledger.bump(self._ledger.users, (app.id, user_id), 1)
        return [_text(item) for item in reply]

    def sign_out(
        self, app: App, user_id: str, socket_id: str, watchlist: Iterable[str]
    ) -> Awaitable[None]:
        _Ledger.bump(self._ledger.users, (app.id, user_id), -1)
        return self._sign_out(app, user_id, list(watchlist))

    async def _sign_out(self, app: App, user_id: str, watchlist: list[str]) -> None:
        try:
            await self._quietly("sign_out", app.id, self.node, user_id)
        finally:
            self._release(self._channel(Target.USER, app.id, user_id))
            for watched in watchlist:
                self._release(self._channel(Target.WATCHERS, app.id, watched))

    # ============================================================ publishing
    def publish(self, delivery: Delivery) -> Awaitable[int]:
        return self._publish(delivery)

    async def _publish(self, delivery: Delivery) -> int:
        """A client event: through Redis when it is up; else to this node only (counted)."""
        if not self.up:
            self.stats.dropped += 1
            return self.local.deliver(delivery) if self.local is not None else 0
        channel = self._channel(delivery.target, delivery.app_id, delivery.name)
        try:
            await self.link.redis.publish(
                channel, wire.encode_deliver(delivery.payload, delivery.exclude)
            )
        except Exception:
            self.stats.dropped += 1
            return self.local.deliver(delivery) if self.local is not None else 0
        self.stats.sent += 1
        return 0

    def trigger(
        self, app: App, delivery: Delivery, event: str, data: str, now: float
    ) -> Awaitable[int]:
        return self._trigger(app, delivery, event, data)

    async def _trigger(self, app: App, delivery: Delivery, event: str, data: str) -> int:
        """An HTTP API event: the cache and the PUBLISH in one step; 503 if Redis is down."""
        self._check_up()
        channel = self._channel(delivery.target, delivery.app_id, delivery.name)
        message = wire.encode_deliver(delivery.payload, delivery.exclude)
        cache_key = value = ""
        ttl = 0
        if delivery.target is Target.CHANNEL and classify(delivery.name).is_cache:
            cache_key = self._cache_key(app.id, delivery.name)
            ttl = max(1, int(app.cache_ttl * 1000))
            value = msgpack.packb([event, data, delivery.payload], use_bin_type=True)
        await self.link.call("trigger", channel, message, cache_key, ttl, value)
        self.stats.sent += 1
        return 0

    def terminate(self, app: App, user_id: str) -> Awaitable[int]:
        return self._terminate(app, user_id)

    async def _terminate(self, app: App, user_id: str) -> int:
        self._check_up()
        if not is_valid_channel_name(user_id):
            return 0
        await self.link.redis.publish(
            self._channel(Target.USER, app.id, user_id), wire.encode_terminate()
        )
        return 0

    def webhook(self, app: App, event: wh.WebhookEvent) -> None:
        """client_event / cache_miss: into the outbox (any node delivers it)."""
        if not app.webhooks:
            return
        if self.up:
            self.link.spawn(
                self.link.add_webhook(app.id, event), fallback=self._emit_here(app, event)
            )
        else:
            self._emit_here(app, event)()

    def _emit_here(self, app: App, event: wh.WebhookEvent) -> Callable[[], None]:
        def emit() -> None:
            if self.local is not None:
                self.local.emit(app, event)

        return emit

    # ============================================================== queries
    def channel(self, app: App, channel: str) -> Awaitable[ChannelState]:
        return self._channel_state(app, channel)

    async def _channel_state(self, app: App, channel: str) -> ChannelState:
        self._check_up()
        redis = self.link.redis
        count = await redis.hget(f"{self._prefix}:app:{app.id}:channels", channel)
        if not count or int(count) <= 0:
            return ChannelState(False, 0)
        users = None
        if classify(channel).is_presence:
            users = int(await redis.hlen(f"{self._prefix}:app:{app.id}:p:{channel}:n"))
        return ChannelState(True, int(count), users)

    def channels(self, app: App, prefix: str = "") -> Awaitable[dict[str, ChannelState]]:
        return self._channels(app, prefix)

    async def _channels(self, app: App, prefix: str) -> dict[str, ChannelState]:
        self._check_up()
        redis = self.link.redis
        raw = await redis.hgetall(f"{self._prefix}:app:{app.id}:channels")
        names = sorted(_text(k) for k, v in raw.items() if int(v) > 0)
        names = [n for n in names if n.startswith(prefix)]
        presence = [n for n in names if classify(n).is_presence]
        counts: dict[str, int] = {}
        if presence:
            async with redis.pipeline(transaction=False) as pipe:
                for name in presence:
                    pipe.hlen(f"{self._prefix}:app:{app.id}:p:{name}:n")
                counts = dict(zip(presence, await pipe.execute(), strict=True))
        totals = {_text(k): int(v) for k, v in raw.items()}
        return {n: ChannelState(True, totals[n], counts.get(n)) for n in names}

    def presence_users(self, app: App, channel: str) -> Awaitable[list[str]]:
        return self._presence_users(app, channel)

    async def _presence_users(self, app: App, channel: str) -> list[str]:
        self._check_up()
        raw = await self.link.redis.hkeys(f"{self._prefix}:app:{app.id}:p:{channel}:n")
        return sorted(_text(k) for k in raw)

    def cached(self, app: App, channel: str, now: float) -> Awaitable[CachedEvent | None]:
        return self._cached(app, channel, now)

    async def _cached(self, app: App, channel: str, now: float) -> CachedEvent | None:
        self._check_up()
        key = self._cache_key(app.id, channel)
        async with self.link.redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            value, ttl = await pipe.execute()
        entry = _cached_event(value, now, ttl)
        return entry

    def connection_count(self, app: App) -> Awaitable[int]:
        return self._connection_count(app)

    async def _connection_count(self, app: App) -> int:
        self._check_up()
        value = await self.link.redis.get(f"{self._prefix}:app:{app.id}:conns")
        return int(value or 0)

    # ================================================================ resync
    def channels_wanted(self) -> list[bytes]:
        return list(self._subs)

    async def resync(self) -> None:
        """Make what Redis holds for this node equal to the ledger (see the module doc)."""
        link, node, ledger = self.link, self.node, self._ledger
        subs_raw, members_raw, users_raw, conns_raw = await link.call("state_of", node)
        have_subs = _pairs(subs_raw)
        have_members = _pairs(members_raw)
        have_users = _pairs(users_raw)
        have_conns = _pairs(conns_raw)
        sep = "\x1f"
        for (app_id, channel, socket_id), (user, info) in list(ledger.members.items()):
            if f"{app_id}{sep}{channel}{sep}{socket_id}" not in have_members:
                added = messages.member_added(channel, user, orjson.loads(info)).encode()
                await link.call(
                    "member_add",
                    app_id,
                    channel,
                    node,
                    socket_id,
                    user,
                    info,
                    self._hooks(app_id),
                    added,
                )
        for fld, member in have_members.items():
            app_id, channel, socket_id = fld.split(sep, 2)
            if (app_id, channel, socket_id) not in ledger.members:
                await link.call(
                    "member_remove",
                    app_id,
                    channel,
                    node,
                    socket_id,
                    self._hooks(app_id),
                    self.delay_ms,
                )
                self._departed.discard((app_id, channel, _text(member)))  # announced just now
        channels = set(ledger.subs) | {tuple(f.split(sep, 1)) for f in have_subs}
        for app_id, channel in channels:
            count = ledger.subs.get((app_id, channel), 0)
            await link.call(
                "resync_subs", app_id, channel, node, count, self._hooks(app_id), self.delay_ms
            )
        users = set(ledger.users) | {tuple(f.split(sep, 1)) for f in have_users}
        for app_id, user in users:
            online = messages.watchlist_events([("online", [user])]).encode()
            await link.call(
                "resync_users",
                app_id,
                node,
                user,
                ledger.users.get((app_id, user), 0),
                wire.encode_deliver(online),
            )
        for app_id in set(ledger.conns) | set(have_conns):
            await link.call("resync_conns", app_id, node, ledger.conns.get(app_id, 0))
        departed, self._departed = self._departed, set()
        for app_id, channel, user in departed:
            await link.call("gone", app_id, channel, user, self._hooks(app_id), self.delay_ms)
        self.stats.resyncs += 1

    def _hooks(self, app_id: str) -> str:
        app = self.apps(app_id)
        return "1" if app is not None and app.webhooks else "0"

    def ledger_sizes(self) -> dict[str, int]:
        ledger = self._ledger
        return {
            "conns": sum(ledger.conns.values()),
            "subs": sum(ledger.subs.values()),
            "members": len(ledger.members),
            "users": sum(ledger.users.values()),
            "listening": len(self._subs),
        }


def _pairs(raw: list[bytes]) -> dict[str, bytes]:
    return {_text(raw[i]): raw[i + 1] for i in range(0, len(raw), 2)}


def _text(value: Any) -> str:
    """A Redis reply item as text (redis-py types them as ``bytes | str``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _cached_event(value: Any, now: float = 0.0, ttl_ms: int = 0) -> CachedEvent | None:
    if not value:
        return None
    event, data, payload = msgpack.unpackb(value, raw=False)
    return CachedEvent(event, data, payload, now + max(0, int(ttl_ms)) / 1000.0)
