"""The facts of Pusher that hold for a whole deployment, changed by explicit operations.

Which channels are occupied and by how many subscriptions, who is present on a presence
channel (counted per user), which users are signed in somewhere (watchlists), the last
event of each cache channel, how many connections an app holds (its quota). Every change
is one operation whose result says which transition happened, so the caller knows
exactly when to announce ``member_added`` / ``channel_vacated``:

=================================  ==============================================
operation                          result
=================================  ==============================================
``join(app, channel, socket, m)``  ``Joined(occupied_now, first_member, members)``
``leave(app, channel, socket, u)`` ``Left(vacated, last_member)``
``sign_in(app, user)``             True on the user's first connection
``sign_out(app, user)``            True when its last connection left
``connect(app)`` / ``disconnect``  the app's connection count
=================================  ==============================================

``MemoryState`` keeps them in this process, which is exact for one node. A cluster keeps
the same facts in a shared store (Redis), changed atomically by the same operations, so
"first" and "last" are decided once for the whole deployment; the ``PusherHub`` that
calls them does not change. Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .apps import App
from .cache import CachedEvent, EventCache
from .channels import classify
from .presence import PresenceMember, PresenceRoster


@dataclass(frozen=True, slots=True)
class Joined:
    occupied_now: bool  # the channel had no subscriber before this one
    first_member: bool  # presence: the user's first connection to the channel
    members: Mapping[str, Any] | None  # presence: user_id -> user_info, for the joiner
    cached: CachedEvent | None = None  # cache channels: the event to replay to the joiner


@dataclass(frozen=True, slots=True)
class Left:
    vacated: bool  # the channel has no subscriber left
    last_member: bool  # presence: the user's last connection left the channel


@dataclass(frozen=True, slots=True)
class ChannelState:
    occupied: bool
    subscription_count: int
    user_count: int | None = None  # presence channels only


VACANT = ChannelState(False, 0)


class _AppFacts:
    __slots__ = ("cache", "connections", "online", "roster", "subscriptions")

    def __init__(self, app: App) -> None:
        self.subscriptions: dict[str, int] = {}  # channel -> subscriptions (occupied only)
        self.roster = PresenceRoster(app.max_presence_members)
        self.online: dict[str, int] = {}  # signed-in user id -> connections
        self.cache = EventCache(ttl=app.cache_ttl)
        self.connections = 0


class MemoryState:
    """The deployment-wide facts of every app, held in this process (one node)."""

    def __init__(self) -> None:
        self._apps: dict[str, _AppFacts] = {}

    def _facts(self, app: App) -> _AppFacts:
        facts = self._apps.get(app.id)
        if facts is None:
            facts = self._apps[app.id] = _AppFacts(app)
        return facts

    # ------------------------------------------------------------- connections
    def connect(self, app: App) -> int:
        facts = self._facts(app)
        facts.connections += 1
        return facts.connections

    def disconnect(self, app: App) -> int:
        facts = self._facts(app)
        facts.connections = max(0, facts.connections - 1)
        return facts.connections

    def connection_count(self, app: App) -> int:
        facts = self._apps.get(app.id)
        return facts.connections if facts is not None else 0

    # ---------------------------------------------------------------- channels
    def join(
        self,
        app: App,
        channel: str,
        socket_id: str,
        member: PresenceMember | None,
        now: float = 0.0,
    ) -> Joined:
        """Count one subscription; ``member`` for presence channels; for cache channels
        the joiner's replay comes with it (read at the same moment).

        Raises ``SubscriptionError`` (4304) when a new user would overflow a presence
        channel; nothing is changed then.
        """
        facts = self._facts(app)
        first_member = False
        members = None
        if member is not None:
            roster = facts.roster
            first_member = roster.add(channel, socket_id, member.user_id, member.user_info)
            members = roster.members(channel)
        count = facts.subscriptions.get(channel, 0)
        facts.subscriptions[channel] = count + 1
        cached = facts.cache.get(channel, now) if classify(channel).is_cache else None
        return Joined(count == 0, first_member, members, cached)

    def leave(self, app: App, channel: str, socket_id: str, user_id: str | None) -> Left:
        facts = self._facts(app)
        last_member = False
        if user_id is not None:
            last_member = facts.roster.remove(channel, socket_id, user_id)
        count = facts.subscriptions.get(channel, 0) - 1
        if count > 0:
            facts.subscriptions[channel] = count
        else:
            facts.subscriptions.pop(channel, None)
        return Left(count <= 0, last_member)

    # ------------------------------------------------------------------- users
    def sign_in(self, app: App, user_id: str) -> bool:
        online = self._facts(app).online
        count = online.get(user_id, 0)
        online[user_id] = count + 1
        return count == 0

    def sign_out(self, app: App, user_id: str) -> bool:
        online = self._facts(app).online
        count = online.get(user_id, 0) - 1
        if count > 0:
            online[user_id] = count
            return False
        online.pop(user_id, None)
        return True

    def online(self, app: App, user_ids: Iterable[str]) -> list[str]:
        """Those of ``user_ids`` signed in somewhere, in the given order."""
        facts = self._apps.get(app.id)
        if facts is None:
            return []
        return [u for u in user_ids if u in facts.online]

    # ------------------------------------------------------------------- cache
    def cache_put(
        self, app: App, channel: str, event: str, data: str, payload: bytes, now: float
    ) -> None:
        self._facts(app).cache.put(channel, event, data, payload, now)

    def cached(self, app: App, channel: str, now: float) -> CachedEvent | None:
        facts = self._apps.get(app.id)
        return facts.cache.get(channel, now) if facts is not None else None

    def expire(self, now: float) -> int:
        """Drop expired cache entries; returns how many."""
        return sum(facts.cache.sweep(now) for facts in self._apps.values())

    # ----------------------------------------------------------------- queries
    def channel(self, app: App, channel: str) -> ChannelState:
        facts = self._apps.get(app.id)
        count = facts.subscriptions.get(channel, 0) if facts is not None else 0
        if not count:
            return VACANT
        assert facts is not None
        users = facts.roster.count(channel) if classify(channel).is_presence else None
        return ChannelState(True, count, users)

    def channels(self, app: App, prefix: str = "") -> dict[str, ChannelState]:
        """Occupied channels whose name starts with ``prefix``."""
        facts = self._apps.get(app.id)
        if facts is None:
            return {}
        out: dict[str, ChannelState] = {}
        roster = facts.roster
        for name, count in facts.subscriptions.items():
            if name.startswith(prefix):
                users = roster.count(name) if classify(name).is_presence else None
                out[name] = ChannelState(True, count, users)
        return out

    def members(self, app: App, channel: str) -> Mapping[str, Any]:
        """Presence: user_id -> user_info of ``channel`` (a live view: use it at once)."""
        return self._facts(app).roster.members(channel)

    def sizes(self, app: App) -> dict[str, int]:
        """How many entries each fact of ``app`` holds (leak checks, debugging)."""
        facts = self._apps.get(app.id)
        if facts is None:
            return {"connections": 0, "channels": 0, "presence_channels": 0, "online": 0}
        return {
            "connections": facts.connections,
            "channels": len(facts.subscriptions),
            "presence_channels": len(facts.roster),
            "online": len(facts.online),
        }

    def presence_users(self, app: App, channel: str) -> list[str]:
        facts = self._apps.get(app.id)
        return facts.roster.user_ids(channel) if facts is not None else []
