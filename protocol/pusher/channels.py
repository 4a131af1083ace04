"""Channel names and kinds (pusher-protocol.md "Channels").

``classify`` is the hot-path call: a chain of anchored ``startswith`` checks, most specific
prefix first, so ``private-encrypted-cache-x`` is never mistaken for ``private-x``.
``validate_channel`` adds the name rules: ``^[-a-zA-Z0-9_=@,.;]+$``, at most 164 chars, and
``#server-to-user-{id}`` only when the caller says the server created the name.
"""

from __future__ import annotations

import enum
import re

MAX_CHANNEL_NAME_LENGTH = 164
SERVER_TO_USER_PREFIX = "#server-to-user-"

_NAME_RE = re.compile(r"[-a-zA-Z0-9_=@,.;]+")


class InvalidChannelName(ValueError):
    """The name breaks the channel name rules."""


class ChannelKind(enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    PRIVATE_ENCRYPTED = "private-encrypted"
    CACHE = "cache"
    PRIVATE_CACHE = "private-cache"
    PRESENCE_CACHE = "presence-cache"
    PRIVATE_ENCRYPTED_CACHE = "private-encrypted-cache"
    SERVER_TO_USER = "server-to-user"  # "#server-to-user-{id}": POST /events only

    @property
    def requires_auth(self) -> bool:
        """A signed ``auth`` is needed to subscribe (server-to-user needs a signin)."""
        return self in _AUTH

    @property
    def is_presence(self) -> bool:
        return self in _PRESENCE

    @property
    def is_encrypted(self) -> bool:
        return self in _ENCRYPTED

    @property
    def is_cache(self) -> bool:
        return self in _CACHE

    @property
    def is_private(self) -> bool:
        """Private-family (signature over ``socket_id:channel`` only)."""
        return self in _PRIVATE

    @property
    def allows_client_events(self) -> bool:
        """Client events: private and presence only, never encrypted (the server cannot
        check ciphertext) nor server-to-user (pusher-protocol.md "Client events")."""
        return self in _CLIENT_EVENTS


_AUTH = frozenset(
    {
        ChannelKind.PRIVATE,
        ChannelKind.PRESENCE,
        ChannelKind.PRIVATE_ENCRYPTED,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRESENCE_CACHE,
        ChannelKind.PRIVATE_ENCRYPTED_CACHE,
    }
)
_PRESENCE = frozenset({ChannelKind.PRESENCE, ChannelKind.PRESENCE_CACHE})
_ENCRYPTED = frozenset({ChannelKind.PRIVATE_ENCRYPTED, ChannelKind.PRIVATE_ENCRYPTED_CACHE})
_CACHE = frozenset(
    {
        ChannelKind.CACHE,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRESENCE_CACHE,
        ChannelKind.PRIVATE_ENCRYPTED_CACHE,
    }
)
_PRIVATE = _AUTH - _PRESENCE
_CLIENT_EVENTS = frozenset(
    {
        ChannelKind.PRIVATE,
        ChannelKind.PRIVATE_CACHE,
        ChannelKind.PRESENCE,
        ChannelKind.PRESENCE_CACHE,
    }
)

# Most specific first: order matters (pusher-protocol.md "Prefixes, checked anchored").
_PREFIXES: tuple[tuple[str, ChannelKind], ...] = (
    ("private-encrypted-cache-", ChannelKind.PRIVATE_ENCRYPTED_CACHE),
    ("private-encrypted-", ChannelKind.PRIVATE_ENCRYPTED),
    ("private-cache-", ChannelKind.PRIVATE_CACHE),
    ("presence-cache-", ChannelKind.PRESENCE_CACHE),
    ("private-", ChannelKind.PRIVATE),
    ("presence-", ChannelKind.PRESENCE),
    ("cache-", ChannelKind.CACHE),
    (SERVER_TO_USER_PREFIX, ChannelKind.SERVER_TO_USER),
)


def classify_slow(name: str) -> ChannelKind:
    """Reference implementation of ``classify``: the prefix table, in order."""
    for prefix, kind in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return ChannelKind.PUBLIC


def classify(name: str) -> ChannelKind:
    """Kind of ``name`` from its prefix. Does not validate the name.

    Hot path (every subscribe and client event): branches on the first character so a
    public name costs one comparison; equivalent to ``classify_slow`` (tested).
    """
    first = name[:1]
    if first == "p":
        if name.startswith("private-"):
            if name.startswith("encrypted-", 8):
                if name.startswith("cache-", 18):
                    return ChannelKind.PRIVATE_ENCRYPTED_CACHE
                return ChannelKind.PRIVATE_ENCRYPTED
            if name.startswith("cache-", 8):
                return ChannelKind.PRIVATE_CACHE
            return ChannelKind.PRIVATE
        if name.startswith("presence-"):
            if name.startswith("cache-", 9):
                return ChannelKind.PRESENCE_CACHE
            return ChannelKind.PRESENCE
        return ChannelKind.PUBLIC
    if first == "c":
        return ChannelKind.CACHE if name.startswith("cache-") else ChannelKind.PUBLIC
    if first == "#" and name.startswith(SERVER_TO_USER_PREFIX):
        return ChannelKind.SERVER_TO_USER
    return ChannelKind.PUBLIC


def is_valid_channel_name(name: str, *, allow_server_to_user: bool = False) -> bool:
    """True if ``name`` obeys the name rules (see ``validate_channel``)."""
    if not isinstance(name, str) or not name or len(name) > MAX_CHANNEL_NAME_LENGTH:
        return False
    if name.startswith(SERVER_TO_USER_PREFIX):
        user_id = name[len(SERVER_TO_USER_PREFIX) :]
        return allow_server_to_user and _NAME_RE.fullmatch(user_id) is not None
    return _NAME_RE.fullmatch(name) is not None


def validate_channel(name: object, *, allow_server_to_user: bool = False) -> ChannelKind:
    """Validate and classify, raising ``InvalidChannelName``.

    ``allow_server_to_user``: True only where the server itself names the channel
    (HTTP ``POST /events`` to ``#server-to-user-{id}``) or the gateway has checked the
    subscriber is signed in as ``{id}``.
    """
    if not isinstance(name, str):
        raise InvalidChannelName("channel name must be a string")
    if not is_valid_channel_name(name, allow_server_to_user=allow_server_to_user):
        if name.startswith(SERVER_TO_USER_PREFIX) and not allow_server_to_user:
            raise InvalidChannelName("server-to-user channels are reserved to the server")
        raise InvalidChannelName("invalid channel name")
    return classify(name)


def server_to_user_id(name: str) -> str | None:
    """The user id of a ``#server-to-user-{id}`` channel, else None."""
    if name.startswith(SERVER_TO_USER_PREFIX):
        user_id = name[len(SERVER_TO_USER_PREFIX) :]
        return user_id or None
    return None


def server_to_user_channel(user_id: str) -> str:
    """The channel pusher-js subscribes to after ``pusher:signin_success``."""
    return SERVER_TO_USER_PREFIX + user_id
