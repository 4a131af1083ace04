"""Client frames in, server frames out (pusher-protocol.md "Events").

``parse_client_message`` turns one text frame into a small frozen dataclass or raises
``PusherError``. It checks shapes only; whether the connection *may* do it (signatures,
subscriptions, rate limits) is ``authorize``'s job.

Error codes raised here (all non-fatal error frames, no close):

* 4300 ``INVALID_MESSAGE``: not JSON, not an object, ``event`` missing / not a string,
  ``data`` or a required field of the wrong type, or a ``pusher_internal:`` event sent by a
  client. pusher-js never sends such frames, so this only answers hand-written clients;
  closing would not help them find their bug.
* 4301 ``CLIENT_EVENT_REJECTED``: an event that is neither ``pusher:`` nor ``client-``, or a
  client event name over 200 characters.

Encoders return ready-to-frame ``str``. Every ``pusher:``/``pusher_internal:`` frame carries
``data`` as a JSON *string* (double encoding); channel events relay ``data`` verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import CLIENT_EVENT_REJECTED, INVALID_MESSAGE, PusherError, SubscriptionError

MAX_EVENT_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    auth: str | None = None
    channel_data: str | None = None  # presence: the exact string that was signed


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class Signin:
    auth: str
    user_data: str  # the exact string that was signed


@dataclass(frozen=True, slots=True)
class ClientEvent:
    event: str
    channel: str
    data: str  # as sent if a string, else its compact JSON; relayed as is


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A ``pusher:`` event this server does not know: ignore it (forward compatible)."""

    event: str


ClientMessage = Ping | Pong | Subscribe | Unsubscribe | Signin | ClientEvent | UnknownEvent

_PING = Ping()
_PONG = Pong()


def _invalid(message: str) -> PusherError:
    return PusherError(INVALID_MESSAGE, message)


def _data_object(msg: dict[str, Any], event: str) -> dict[str, Any]:
    data = msg.get("data")
    if isinstance(data, str):
        # Tolerate double-encoded data from clients that mimic server frames.
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _invalid(f"{event}: data must be an object") from None
    if not isinstance(data, dict):
        raise _invalid(f"{event}: data must be an object")
    return data


def _opt_str(data: dict[str, Any], key: str, event: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(f"{event}: {key} must be a string")


def _req_str(data: dict[str, Any], key: str, event: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _invalid(f"{event}: {key} must be a string")
    return value


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """Parse one client text frame; raise ``PusherError`` (see module doc for codes)."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise _invalid("Invalid JSON") from None
    if not isinstance(msg, dict):
        raise _invalid("Message must be a JSON object")
    event = msg.get("event")
    if not isinstance(event, str) or not event:
        raise _invalid("Message must have an event name")

    if event.startswith("pusher:"):
        if event == "pusher:ping":
            return _PING
        if event == "pusher:pong":
            return _PONG
        if event == "pusher:subscribe":
            data = _data_object(msg, event)
            return Subscribe(
                _req_str(data, "channel", event),
                _opt_str(data, "auth", event),
                _opt_str(data, "channel_data", event),
            )
        if event == "pusher:unsubscribe":
            return Unsubscribe(_req_str(_data_object(msg, event), "channel", event))
        if event == "pusher:signin":
            data = _data_object(msg, event)
            return Signin(_req_str(data, "auth", event), _req_str(data, "user_data", event))
        return UnknownEvent(event)

    if event.startswith("client-"):
        if len(event) > MAX_EVENT_NAME_LENGTH:
            raise PusherError(CLIENT_EVENT_REJECTED, "Event name too long")
        channel = msg.get("channel")
        if not isinstance(channel, str):
            raise _invalid("Client event must have a channel")
        payload = msg.get("data")
        if isinstance(payload, str):
            return ClientEvent(event, channel, payload)
        try:
            text = orjson.dumps(payload).decode()
        except orjson.JSONEncodeError:
            # orjson reads 1024 levels of nesting but writes only 254: deeper data
            # parsed fine above and cannot be re-encoded (a TypeError otherwise).
            raise _invalid("Client event data is nested too deeply") from None
        return ClientEvent(event, channel, text)

    if event.startswith("pusher_internal:"):
        raise _invalid("pusher_internal events are server-only")
    raise PusherError(CLIENT_EVENT_REJECTED, "Client event names must start with client-")


# -- server -> client encoders ------------------------------------------------------------


def _frame(event: str, data: Any, channel: str | None = None) -> str:
    inner = orjson.dumps(data).decode()
    if channel is None:
        return orjson.dumps({"event": event, "data": inner}).decode()
    return orjson.dumps({"event": event, "channel": channel, "data": inner}).decode()


def connection_established(socket_id: str, activity_timeout: int = 120) -> str:
    """First frame; pusher-js throws if ``activity_timeout`` is missing."""
    return _frame(
        "pusher:connection_established",
        {"socket_id": socket_id, "activity_timeout": activity_timeout},
    )


PING = '{"event":"pusher:ping","data":"{}"}'
PONG = '{"event":"pusher:pong","data":"{}"}'


def ping() -> str:
    return PING


def pong() -> str:
    return PONG


def error(message: str, code: int | None) -> str:
    """``pusher:error``; ``code`` None is allowed by pusher-js (generic error)."""
    return _frame("pusher:error", {"message": message, "code": code})


def error_from(exc: PusherError) -> str:
    """``pusher:error`` for a ``PusherError``; for a ``SubscriptionError`` use
    ``subscription_error_from`` instead (that is what laravel-echo listens to)."""
    return error(exc.message, exc.code)


def subscription_succeeded(channel: str, members: Mapping[str, Any] | None = None) -> str:
    """``pusher_internal:subscription_succeeded``; ``members`` (user_id -> user_info) for
    presence channels gives ``{"presence": {"ids", "hash", "count"}}``."""
    if members is None:
        return _frame("pusher_internal:subscription_succeeded", {}, channel)
    presence = {"ids": list(members), "hash": dict(members), "count": len(members)}
    return _frame("pusher_internal:subscription_succeeded", {"presence": presence}, channel)


def subscription_error(channel: str, type: str, error: str, status: int) -> str:
    return _frame(
        "pusher:subscription_error", {"type": type, "error": error, "status": status}, channel
    )


def subscription_error_from(exc: SubscriptionError) -> str:
    """From a ``SubscriptionError``."""
    return subscription_error(exc.channel, exc.type, exc.message, exc.status)


def member_added(channel: str, user_id: str, user_info: Any = None) -> str:
    data: dict[str, Any] = {"user_id": user_id}
    if user_info is not None:
        data["user_info"] = user_info
    return _frame("pusher_internal:member_added", data, channel)


def member_removed(channel: str, user_id: str) -> str:
    return _frame("pusher_internal:member_removed", {"user_id": user_id}, channel)


def subscription_count(channel: str, count: int) -> str:
    return _frame("pusher_internal:subscription_count", {"subscription_count": count}, channel)


def cache_miss(channel: str) -> str:
    """Sent right after ``subscription_succeeded`` on a cache channel with nothing cached."""
    return orjson.dumps({"event": "pusher:cache_miss", "channel": channel}).decode()


def signin_success(user_data: str) -> str:
    """``user_data`` is the signed string, echoed unchanged."""
    return _frame("pusher:signin_success", {"user_data": user_data})


def watchlist_events(events: Iterable[tuple[str, Iterable[str]]]) -> str:
    """``events``: pairs of (``"online"`` | ``"offline"``, user ids)."""
    return _frame(
        "pusher_internal:watchlist_events",
        {"events": [{"name": name, "user_ids": list(ids)} for name, ids in events]},
    )


def channel_event_bytes(event: str, channel: str, data: str, user_id: str | None = None) -> bytes:
    """A channel event, UTF-8 JSON bytes: the encode-once form for broadcasts.

    ``data`` is the publisher's string, relayed verbatim (encrypted channels rely on it);
    ``user_id`` only for client events on presence channels.
    """
    if user_id is None:
        return orjson.dumps({"event": event, "channel": channel, "data": data})
    return orjson.dumps({"event": event, "channel": channel, "data": data, "user_id": user_id})


def channel_event(event: str, channel: str, data: str, user_id: str | None = None) -> str:
    """``channel_event_bytes`` as ``str``."""
    return channel_event_bytes(event, channel, data, user_id).decode()
