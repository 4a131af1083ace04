"""HTTP API request bodies and queries in, response bodies out (pusher-protocol.md
"HTTP API"). Authentication is ``apirequest.verify_api_request``; call it first.

Parsers raise ``ApiError`` (400, or 413 for a too-large ``data``) and return frozen
dataclasses; limits come from the ``App``. Builders return JSON ``bytes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .apps import App
from .channels import ChannelKind, InvalidChannelName, is_valid_channel_name, validate_channel
from .errors import ApiError
from .signatures import QueryParams, is_valid_socket_id, iter_pairs

MAX_EVENT_NAME_LENGTH = 200
MAX_USER_ID_LENGTH = 128
TRIGGER_INFO = frozenset({"user_count", "subscription_count"})
CHANNELS_INFO = frozenset({"user_count", "subscription_count"})
CHANNEL_INFO = frozenset({"user_count", "subscription_count", "cache"})


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """One event to publish (``POST /events`` or one ``batch_events`` item)."""

    name: str
    data: str  # relayed verbatim
    channels: tuple[str, ...]  # validated, deduplicated, order kept
    socket_id: str | None = None  # connection to exclude
    info: frozenset[str] = frozenset()  # attributes wanted in the response


@dataclass(frozen=True, slots=True)
class ChannelsQuery:
    """``GET /channels``."""

    prefix: str | None
    info: frozenset[str]


@dataclass(frozen=True, slots=True)
class ChannelQuery:
    """``GET /channels/{channel}``."""

    channel: str
    kind: ChannelKind
    info: frozenset[str]


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad("Request body must be JSON") from None
    if not isinstance(value, dict):
        raise _bad("Request body must be a JSON object")
    return value


def _info(value: object, allowed: frozenset[str]) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    if not isinstance(value, str):
        raise _bad("info must be a comma-separated string")
    attributes = frozenset(a.strip() for a in value.split(",") if a.strip())
    unknown = attributes - allowed
    if unknown:
        raise _bad(f"Unsupported info attribute: {sorted(unknown)[0]}")
    return attributes


def _event(item: dict[str, Any], app: App, *, batch: bool) -> TriggerRequest:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("name must be a non-empty string")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise _bad("Event name is longer than 200 characters")

    data = item.get("data")
    if not isinstance(data, str):
        raise _bad("data must be a string")
    limit = app.max_event_payload_bytes
    if len(data) > limit or (len(data) * 4 > limit and len(data.encode()) > limit):
        raise ApiError(413, f"Event data is larger than {app.max_event_payload_kb} KB")

    raw: object
    if batch:
        raw = [item.get("channel")]
    elif "channels" in item:
        raw = item["channels"]
    elif "channel" in item:
        raw = [item["channel"]]
    else:
        raise _bad("channels or channel is required")
    if not isinstance(raw, list) or not raw:
        raise _bad("channels must be a non-empty list")
    if len(raw) > app.max_channels_per_event:
        raise _bad(f"Too many channels: at most {app.max_channels_per_event}")
    channels: list[str] = []
    encrypted = False
    for channel in raw:
        try:
            kind = validate_channel(channel, allow_server_to_user=True)
        except InvalidChannelName:
            raise _bad("Invalid channel name") from None
        encrypted = encrypted or kind.is_encrypted
        if channel not in channels:
            channels.append(channel)
    if encrypted and len(channels) > 1:
        # Each encrypted channel has its own key: one ciphertext cannot serve two.
        raise _bad("Encrypted channels cannot be triggered together with other channels")

    socket_id = item.get("socket_id")
    if socket_id is not None and not is_valid_socket_id(socket_id):
        raise _bad("Invalid socket_id")

    return TriggerRequest(
        name, data, tuple(channels), socket_id, _info(item.get("info"), TRIGGER_INFO)
    )


def parse_trigger(body: bytes, app: App) -> TriggerRequest:
    """``POST /events``: ``{name, data, channels | channel, socket_id?, info?}``.

    400: bad JSON or field, name > 200 chars, no / too many (> ``app.max_channels_per_event``)
    / invalid channels, several channels with an encrypted one, bad ``socket_id``,
    unknown ``info`` attribute. 413: ``data`` over ``app.max_event_payload_kb``.
    ``#server-to-user-{id}`` channels are accepted here (server-created names).
    """
    return _event(_json_object(body), app, batch=False)


def parse_batch(body: bytes, app: App) -> tuple[TriggerRequest, ...]:
    """``POST /batch_events``: ``{batch: [{channel, name, data, socket_id?, info?}]}``,
    1 to ``app.max_batch_size`` items (400 beyond); each item as ``parse_trigger``."""
    batch = _json_object(body).get("batch")
    if not isinstance(batch, list) or not batch:
        raise _bad("batch must be a non-empty list")
    if len(batch) > app.max_batch_size:
        raise _bad(f"Batch too large: at most {app.max_batch_size} events")
    events = []
    for item in batch:
        if not isinstance(item, dict):
            raise _bad("batch items must be objects")
        events.append(_event(item, app, batch=True))
    return tuple(events)


def _query(params: QueryParams) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for key, value in iter_pairs(params):
        merged.setdefault(key.lower(), []).append(value)
    return {k: ",".join(v) for k, v in merged.items()}


def parse_channels_query(params: QueryParams) -> ChannelsQuery:
    """``GET /channels?filter_by_prefix=&info=``: ``user_count`` only with a prefix
    starting ``presence-`` (400 otherwise: other channels have no users)."""
    query = _query(params)
    prefix = query.get("filter_by_prefix") or None
    info = _info(query.get("info"), CHANNELS_INFO)
    if "user_count" in info and not (prefix or "").startswith("presence-"):
        raise _bad("user_count requires filter_by_prefix=presence-")
    return ChannelsQuery(prefix, info)


def parse_channel_query(channel: str, params: QueryParams) -> ChannelQuery:
    """``GET /channels/{channel}?info=user_count,subscription_count,cache``: an
    attribute that does not apply to the channel is a 400 (``user_count`` needs a presence
    channel, ``cache`` a cache channel)."""
    kind = _api_channel(channel)
    info = _info(_query(params).get("info"), CHANNEL_INFO)
    if "user_count" in info and not kind.is_presence:
        raise _bad("user_count is only available for presence channels")
    if "cache" in info and not kind.is_cache:
        raise _bad("cache is only available for cache channels")
    return ChannelQuery(channel, kind, info)


def parse_users_query(channel: str) -> ChannelKind:
    """``GET /channels/{channel}/users``: presence channels only (400 otherwise)."""
    kind = _api_channel(channel)
    if not kind.is_presence:
        raise _bad("Users can only be listed for presence channels")
    return kind


def parse_terminate_user(user_id: str) -> str:
    """``POST /users/{user_id}/terminate_connections``: the id, checked (400)."""
    if not user_id or len(user_id) > MAX_USER_ID_LENGTH or not is_valid_channel_name(user_id):
        raise _bad("Invalid user id")
    return user_id


def _api_channel(channel: str) -> ChannelKind:
    try:
        return validate_channel(channel, allow_server_to_user=True)
    except InvalidChannelName:
        raise _bad("Invalid channel name") from None


# -- response bodies ---------------------------------------------------------------------

EMPTY = b"{}"


def error_body(error: ApiError) -> bytes:
    return orjson.dumps({"error": error.message})


def trigger_response(channels: Mapping[str, Mapping[str, int]] | None = None) -> bytes:
    """``{}``, or with ``info``: ``{"channels": {name: {user_count?, subscription_count?}}}``."""
    if not channels:
        return EMPTY
    return orjson.dumps({"channels": channels})


def batch_response(items: Iterable[Mapping[str, int]] | None = None) -> bytes:
    """``{}``, or with ``info`` in any item: ``{"batch": [{...} per item, in order]}``."""
    if items is None:
        return EMPTY
    return orjson.dumps({"batch": list(items)})


def channels_response(channels: Mapping[str, Mapping[str, int]]) -> bytes:
    """``GET /channels``: occupied channels only, each with the asked attributes."""
    return orjson.dumps({"channels": channels})


def channel_response(
    occupied: bool,
    *,
    user_count: int | None = None,
    subscription_count: int | None = None,
    cache: Mapping[str, Any] | None = None,
) -> bytes:
    """``GET /channels/{c}``: ``{occupied, user_count?, subscription_count?, cache?}``;
    ``cache`` is ``{"data": str, "ttl": seconds left}`` when an event is cached."""
    body: dict[str, Any] = {"occupied": occupied}
    if user_count is not None:
        body["user_count"] = user_count
    if subscription_count is not None:
        body["subscription_count"] = subscription_count
    if cache is not None:
        body["cache"] = cache
    return orjson.dumps(body)


def users_response(user_ids: Iterable[str]) -> bytes:
    """``GET /channels/{c}/users``: ``{"users": [{"id": ...}]}``."""
    return orjson.dumps({"users": [{"id": u} for u in user_ids]})
