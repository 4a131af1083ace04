"""Presence: ``channel_data`` validation and the per-channel roster of members.

A user may hold several connections to one presence channel (tabs); members are counted
per *user*: ``member_added`` goes out on a user's first connection to the channel and
``member_removed`` when the last one leaves (pusher-protocol.md "Events").

This roster is the in-process implementation. With several nodes the gateway must merge
rosters through the broker (Reverb's per-node presence is a known bug), which is why the
API is small and keyed only by strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import presence_full

MAX_USER_ID_LENGTH = 128
MAX_USER_INFO_BYTES = 1024
# Levels of JSON nesting in user_info (a profile is a few levels; see check_user_info).
MAX_USER_INFO_DEPTH = 32
DEFAULT_MAX_MEMBERS = 100


class InvalidPresenceData(ValueError):
    """``channel_data`` (or signin ``user_data``) is not acceptable."""


@dataclass(frozen=True, slots=True)
class PresenceMember:
    user_id: str
    user_info: Any = None


def normalize_user_id(value: object, field: str = "user_id") -> str:
    """A user id may be a string or an integer (then sent as a string); 1-128 chars."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidPresenceData(f"{field} must be a string or an integer")
    user_id = str(value)
    if not user_id:
        raise InvalidPresenceData(f"{field} must not be empty")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise InvalidPresenceData(f"{field} is longer than 128 characters")
    return user_id


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """True if ``value`` nests lists/dicts more than ``limit`` levels (iterative: no
    recursion on hostile input; only called on values already known to be <= 1 KB)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def check_user_info(user_info: Any) -> None:
    """At most 1 KB encoded and ``MAX_USER_INFO_DEPTH`` levels deep.

    The depth bound matters because the server wraps ``user_info`` in its own frames
    (``member_added``, ``subscription_succeeded``: up to 4 more levels) and orjson
    refuses to encode more than 254 levels; it also keeps every later encode cheap.
    """
    if user_info is None:
        return
    try:
        encoded = orjson.dumps(user_info)
    except orjson.JSONEncodeError:  # deeper than orjson writes (254 levels)
        raise InvalidPresenceData("user_info is nested too deeply") from None
    if len(encoded) > MAX_USER_INFO_BYTES:
        raise InvalidPresenceData("user_info is larger than 1 KB")
    if _nesting_exceeds(user_info, MAX_USER_INFO_DEPTH):
        raise InvalidPresenceData("user_info is nested too deeply")


def parse_channel_data(channel_data: str | None) -> PresenceMember:
    """Validate presence ``channel_data``: a JSON object string with ``user_id`` and an
    optional ``user_info`` (<= 1 KB encoded)."""
    if not isinstance(channel_data, str):
        raise InvalidPresenceData("channel_data is required on presence channels")
    try:
        data = orjson.loads(channel_data)
    except orjson.JSONDecodeError:
        raise InvalidPresenceData("channel_data must be JSON") from None
    if not isinstance(data, dict):
        raise InvalidPresenceData("channel_data must be a JSON object")
    if "user_id" not in data:
        raise InvalidPresenceData("channel_data must contain user_id")
    user_id = normalize_user_id(data["user_id"])
    user_info = data.get("user_info")
    check_user_info(user_info)
    return PresenceMember(user_id, user_info)


class _Member:
    __slots__ = ("info", "sockets")

    def __init__(self, info: Any) -> None:
        self.info = info
        self.sockets: set[str] = set()


class PresenceRoster:
    """Members of every presence channel of one app, deduplicated per user."""

    __slots__ = ("_channels", "_infos", "max_members")

    def __init__(self, max_members: int = DEFAULT_MAX_MEMBERS) -> None:
        self.max_members = max_members
        self._channels: dict[str, dict[str, _Member]] = {}
        # user_id -> user_info per channel, kept alongside for a zero-copy members() view
        self._infos: dict[str, dict[str, Any]] = {}

    def add(
        self,
        channel: str,
        socket_id: str,
        user_id: str,
        user_info: Any = None,
        *,
        max_members: int | None = None,
    ) -> bool:
        """Record ``socket_id`` as ``user_id`` in ``channel``.

        True if this is the user's first connection there (send ``member_added`` to the
        others). Raises ``SubscriptionError`` (4304, ``LimitReached``) if a new user would
        exceed ``max_members``. A user's ``user_info`` is the one of its first connection.
        """
        members = self._channels.get(channel)
        if members is None:
            members = self._channels[channel] = {}
            self._infos[channel] = {}
        member = members.get(user_id)
        if member is not None:
            member.sockets.add(socket_id)
            return False
        limit = self.max_members if max_members is None else max_members
        if len(members) >= limit:
            if not members:
                del self._channels[channel], self._infos[channel]
            raise presence_full(channel)
        member = members[user_id] = _Member(user_info)
        member.sockets.add(socket_id)
        self._infos[channel][user_id] = user_info
        return True

    def remove(self, channel: str, socket_id: str, user_id: str) -> bool:
        """Forget ``socket_id``; True if it was the user's last connection in ``channel``
        (send ``member_removed``). Unknown entries are ignored (returns False)."""
        members = self._channels.get(channel)
        if members is None:
            return False
        member = members.get(user_id)
        if member is None or socket_id not in member.sockets:
            return False
        member.sockets.discard(socket_id)
        if member.sockets:
            return False
        del members[user_id]
        del self._infos[channel][user_id]
        if not members:
            del self._channels[channel], self._infos[channel]
        return True

    def members(self, channel: str) -> Mapping[str, Any]:
        """user_id -> user_info, ready for ``messages.subscription_succeeded``. A live
        view: copy it if you keep it past the next ``add``/``remove``."""
        return self._infos.get(channel, _EMPTY)

    def count(self, channel: str) -> int:
        """Distinct users (the HTTP API ``user_count``)."""
        members = self._channels.get(channel)
        return len(members) if members else 0

    def user_ids(self, channel: str) -> list[str]:
        return list(self._infos.get(channel, _EMPTY))

    def sockets_of(self, channel: str, user_id: str) -> frozenset[str]:
        members = self._channels.get(channel)
        member = members.get(user_id) if members else None
        return frozenset(member.sockets) if member else frozenset()

    def has_member(self, channel: str, user_id: str) -> bool:
        members = self._channels.get(channel)
        return members is not None and user_id in members

    def channels(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        """Number of presence channels with at least one member."""
        return len(self._channels)


_EMPTY: Mapping[str, Any] = {}
