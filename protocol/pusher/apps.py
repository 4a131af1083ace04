"""Applications: credentials, limits and policies of one Pusher app.

``App`` is immutable and read on the hot path (``app.client_events``, limits). ``AppStore``
is the lookup interface the gateway depends on; ``StaticAppStore`` serves apps from the
config file, and a database-backed store can implement the same two methods later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

WEBHOOK_EVENT_TYPES = frozenset(
    {
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count",
    }
)


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook endpoint. Empty ``event_types`` means every event type."""

    url: str
    event_types: frozenset[str] = frozenset()
    headers: tuple[tuple[str, str], ...] = ()

    def wants(self, event_name: str) -> bool:
        return not self.event_types or event_name in self.event_types


@dataclass(frozen=True, slots=True)
class App:
    id: str
    key: str
    secret: str = field(repr=False)
    name: str = ""
    enabled: bool = True
    max_connections: int | None = None  # None: unlimited
    client_events: bool = False
    max_client_events_per_second: int = 10
    max_event_payload_kb: int = 10
    max_channels_per_event: int = 100
    max_batch_size: int = 10
    max_presence_members: int = 100
    webhooks: tuple[Webhook, ...] = ()
    # uvgate's stricter policies (pusher-protocol.md "Where the existing servers fall short")
    auth_failure: Literal["close", "error"] = "close"
    require_auth_within: float | None = None  # seconds to subscribe/sign in, or be closed
    first_message: Literal["any", "signin"] = "any"
    activity_timeout: int = 120
    cache_ttl: float = 1800.0

    @property
    def max_event_payload_bytes(self) -> int:
        return self.max_event_payload_kb * 1024

    def webhooks_for(self, event_name: str) -> tuple[Webhook, ...]:
        return tuple(w for w in self.webhooks if w.wants(event_name))


# The id is numeric: the Pusher Python library refuses any other ("Invalid app id"); the
# Node and PHP libraries take any id. Key and secret are soketi's (tests/gateway/test_dev_app.py).
DEV_APP = App(id="12345", key="app-key", secret="app-secret", name="dev", client_events=True)


class AppStore(Protocol):
    """Lookup of apps; synchronous, called once per connection / API request."""

    def by_key(self, key: str) -> App | None: ...

    def by_id(self, app_id: str) -> App | None: ...


class StaticAppStore:
    """Apps from the config file. Keys and ids must be unique. ``replace`` swaps the whole
    set at once (a reload): the parts holding the store see the new apps."""

    __slots__ = ("_by_id", "_by_key")

    def __init__(self, apps: Iterable[App]) -> None:
        self._by_key: dict[str, App] = {}
        self._by_id: dict[str, App] = {}
        self.replace(apps)

    def replace(self, apps: Iterable[App]) -> None:
        """Serve ``apps`` instead (checked first: a duplicate changes nothing)."""
        by_key: dict[str, App] = {}
        by_id: dict[str, App] = {}
        for app in apps:
            if app.key in by_key:
                raise ValueError(f"duplicate app key {app.key!r}")
            if app.id in by_id:
                raise ValueError(f"duplicate app id {app.id!r}")
            by_key[app.key] = app
            by_id[app.id] = app
        self._by_key, self._by_id = by_key, by_id

    def by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    def by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    def __iter__(self) -> Iterator[App]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


# -- building from config data (TOML) ------------------------------------------------------

_FIELDS = frozenset(App.__dataclass_fields__)


def _str(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"{where}: missing required {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{where}: {key!r} must be a string")
    text = str(value)
    if required and not text:
        raise ValueError(f"{where}: {key!r} must not be empty")
    return text


def _bool(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key!r} must be true or false")
    return value


def _int(
    data: Mapping[str, Any], key: str, where: str, default: int | None, *, optional: bool = False
) -> int | None:
    value = data.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {key!r} must be a positive integer")
    return value


def _number(
    data: Mapping[str, Any], key: str, where: str, default: float | None, *, optional: bool = False
) -> float | None:
    value = data.get(key, default)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {key!r} must be a number")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: {key!r} must be a positive number")
    return float(value)


def _choice(data: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...]) -> str:
    value = data.get(key, choices[0])
    if value not in choices:
        raise ValueError(f"{where}: {key!r} must be one of {', '.join(map(repr, choices))}")
    return str(value)


def webhook_from_mapping(data: Mapping[str, Any], where: str = "webhook") -> Webhook:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: must be a table")
    unknown = set(data) - {"url", "event_types", "headers"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    url = _str(data, "url", where, required=True)
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{where}: 'url' must start with http:// or https://")
    types = data.get("event_types", [])
    if not isinstance(types, list | tuple) or not all(isinstance(t, str) for t in types):
        raise ValueError(f"{where}: 'event_types' must be a list of strings")
    bad = set(types) - WEBHOOK_EVENT_TYPES
    if bad:
        raise ValueError(f"{where}: unknown event types {', '.join(sorted(bad))}")
    headers = data.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError(f"{where}: 'headers' must be a table of strings")
    return Webhook(url, frozenset(types), tuple(headers.items()))


def app_from_mapping(data: Mapping[str, Any]) -> App:
    """Build an ``App`` from config data (a TOML table), with clear ``ValueError``s."""
    if not isinstance(data, Mapping):
        raise ValueError("app: must be a table")
    where = f"app {data.get('id', '?')!s}"
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    app_id = _str(data, "id", where, required=True)
    key = _str(data, "key", where, required=True)
    secret = _str(data, "secret", where, required=True)
    assert app_id is not None and key is not None and secret is not None
    hooks = data.get("webhooks", [])
    if not isinstance(hooks, list | tuple):
        raise ValueError(f"{where}: 'webhooks' must be a list of tables")
    webhooks = tuple(webhook_from_mapping(h, f"{where} webhook {i}") for i, h in enumerate(hooks))

    def pos(key: str, default: int) -> int:
        value = _int(data, key, where, default)
        assert value is not None
        return value

    activity_timeout = pos("activity_timeout", 120)
    cache_ttl = _number(data, "cache_ttl", where, 1800.0)
    assert cache_ttl is not None
    if cache_ttl > 1800:
        raise ValueError(f"{where}: 'cache_ttl' must be at most 1800 seconds")
    return App(
        id=app_id,
        key=key,
        secret=secret,
        name=_str(data, "name", where) or "",
        enabled=_bool(data, "enabled", where, True),
        max_connections=_int(data, "max_connections", where, None, optional=True),
        client_events=_bool(data, "client_events", where, False),
        max_client_events_per_second=pos("max_client_events_per_second", 10),
        max_event_payload_kb=pos("max_event_payload_kb", 10),
        max_channels_per_event=pos("max_channels_per_event", 100),
        max_batch_size=pos("max_batch_size", 10),
        max_presence_members=pos("max_presence_members", 100),
        webhooks=webhooks,
        auth_failure=_choice(data, "auth_failure", where, ("close", "error")),  # type: ignore[arg-type]
        require_auth_within=_number(data, "require_auth_within", where, None, optional=True),
        first_message=_choice(data, "first_message", where, ("any", "signin")),  # type: ignore[arg-type]
        activity_timeout=activity_timeout,
        cache_ttl=cache_ttl,
    )
