"""What a connection may do: subscribe, sign in, send client events.

Pure decisions over parsed messages (``messages``) and an ``App``; the gateway keeps the
state (socket id, signed-in user, subscriptions) and passes it in.

Refusals and their codes:

=================================  ===========================================  ==========
case                               reply                                        code
=================================  ===========================================  ==========
invalid channel name               subscription_error InvalidChannel / 400      4300
``#server-to-user-X`` not signed   subscription_error AuthError / 403           4009
in as X
missing / bad ``auth``             subscription_error AuthError / 401           4009
bad presence ``channel_data``      subscription_error InvalidChannelData / 400  4300
(signature was valid)
presence channel full (presence)   subscription_error LimitReached / 403        4304
bad signin signature or user_data  pusher:error, then close                     4009
watchlist over 100 ids             pusher:error (signin refused)                4302
client event not allowed           pusher:error                                 4301
``first_message="signin"`` broken  pusher:error, then close                     4009
=================================  ===========================================  ==========

A 4009 ``SubscriptionError`` is an authentication failure: with ``app.auth_failure ==
"close"`` (uvgate's default, stricter than soketi/Reverb) the gateway also sends
``pusher:error`` 4009 and closes with 4009; with ``"error"`` it only sends the
subscription_error, like the other servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .apps import App
from .channels import (
    ChannelKind,
    InvalidChannelName,
    is_valid_channel_name,
    server_to_user_id,
    validate_channel,
)
from .errors import (
    CLIENT_EVENT_REJECTED,
    INVALID_MESSAGE,
    UNAUTHORIZED,
    WATCHLIST_TOO_BIG,
    PusherError,
    SubscriptionError,
)
from .messages import ClientEvent, ClientMessage, Ping, Pong, Signin, Subscribe
from .presence import (
    InvalidPresenceData,
    PresenceMember,
    check_user_info,
    normalize_user_id,
    parse_channel_data,
)
from .signatures import verify_channel_auth, verify_user_auth

MAX_WATCHLIST = 100


@dataclass(frozen=True, slots=True)
class SubscriptionGrant:
    """A subscription the connection may make. ``member`` is set for presence channels."""

    channel: str
    kind: ChannelKind
    member: PresenceMember | None = None


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """The result of a good ``pusher:signin``: answer ``signin_success(user_data)``."""

    id: str
    user_info: Any
    watchlist: tuple[str, ...]
    user_data: str  # the signed string, echoed in signin_success


def _auth_error(channel: str, message: str, status: int = 401) -> SubscriptionError:
    return SubscriptionError(channel, UNAUTHORIZED, message, type="AuthError", status=status)


def authorize_subscription(
    app: App, socket_id: str, msg: Subscribe, *, user_id: str | None = None
) -> SubscriptionGrant:
    """Check ``pusher:subscribe``; ``user_id`` is the signed-in user, if any.

    Raises ``SubscriptionError`` (see the module table). Does not touch the roster:
    for presence, pass ``grant.member`` to ``PresenceRoster.add`` next.
    """
    channel = msg.channel
    try:
        kind = validate_channel(channel, allow_server_to_user=True)
    except InvalidChannelName:
        raise SubscriptionError(
            channel, INVALID_MESSAGE, "Invalid channel name", type="InvalidChannel", status=400
        ) from None

    if kind is ChannelKind.SERVER_TO_USER:
        # pusher-js subscribes here right after signin_success; no auth field.
        if user_id is None or server_to_user_id(channel) != user_id:
            raise _auth_error(channel, "Sign in as this user first", 403)
        return SubscriptionGrant(channel, kind)

    if not kind.requires_auth:
        return SubscriptionGrant(channel, kind)

    if msg.auth is None:
        raise _auth_error(channel, "Missing auth for a private or presence channel")

    if kind.is_presence:
        if msg.channel_data is None:
            raise _auth_error(channel, "Missing channel_data for a presence channel")
        if not verify_channel_auth(
            msg.auth, app.key, app.secret, socket_id, channel, msg.channel_data
        ):
            raise _auth_error(channel, "Invalid signature")
        try:
            member = parse_channel_data(msg.channel_data)
        except InvalidPresenceData as exc:
            raise SubscriptionError(
                channel, INVALID_MESSAGE, str(exc), type="InvalidChannelData", status=400
            ) from None
        return SubscriptionGrant(channel, kind, member)

    # private / encrypted: channel_data, if any, is not part of the signature.
    if not verify_channel_auth(msg.auth, app.key, app.secret, socket_id, channel):
        raise _auth_error(channel, "Invalid signature")
    return SubscriptionGrant(channel, kind)


def authorize_signin(app: App, socket_id: str, msg: Signin) -> SignedInUser:
    """Check ``pusher:signin``; raises ``PusherError`` 4009 (fatal) or 4302."""
    if not verify_user_auth(msg.auth, app.key, app.secret, socket_id, msg.user_data):
        raise PusherError(UNAUTHORIZED, "Invalid signin signature")
    try:
        data = orjson.loads(msg.user_data)
    except orjson.JSONDecodeError:
        raise PusherError(UNAUTHORIZED, "user_data must be JSON") from None
    if not isinstance(data, dict):
        raise PusherError(UNAUTHORIZED, "user_data must be a JSON object")
    try:
        user_id = normalize_user_id(data.get("id"), "id")
        user_info = data.get("user_info")
        check_user_info(user_info)
    except InvalidPresenceData as exc:
        raise PusherError(UNAUTHORIZED, f"user_data: {exc}") from None
    # The id names the channel "#server-to-user-{id}", so it must be a valid name part.
    if not is_valid_channel_name(user_id):
        raise PusherError(UNAUTHORIZED, "user_data: id has invalid characters")
    watchlist = data.get("watchlist", ())
    if not isinstance(watchlist, list | tuple):
        raise PusherError(UNAUTHORIZED, "user_data: watchlist must be a list")
    if len(watchlist) > MAX_WATCHLIST:
        raise PusherError(WATCHLIST_TOO_BIG, "Watchlist has more than 100 user ids")
    try:
        ids = tuple(normalize_user_id(w, "watchlist id") for w in watchlist)
    except InvalidPresenceData:
        raise PusherError(UNAUTHORIZED, "user_data: invalid watchlist id") from None
    return SignedInUser(user_id, user_info, ids, msg.user_data)


def check_client_event(app: App, msg: ClientEvent, kind: ChannelKind | None) -> None:
    """Client-event rules except the rate limit (``ratelimit.take``, checked after).

    ``kind``: the channel's kind if this connection is subscribed to ``msg.channel``,
    else None. Raises ``PusherError`` 4301 (non-fatal). On success the gateway relays
    ``messages.channel_event_bytes(msg.event, msg.channel, msg.data, user_id)`` to the
    other subscribers (``user_id`` on presence channels) and fires ``client_event``.
    """
    if not app.client_events:
        raise PusherError(CLIENT_EVENT_REJECTED, "Client events are not enabled for this app")
    if kind is None:
        raise PusherError(CLIENT_EVENT_REJECTED, "Not subscribed to the channel")
    if not kind.allows_client_events:
        raise PusherError(
            CLIENT_EVENT_REJECTED,
            "Client events are only allowed on private and presence channels",
        )
    data, limit = msg.data, app.max_event_payload_bytes
    # len(str) <= UTF-8 length <= 4 * len(str): only encode when it can matter.
    if len(data) > limit or (
        len(data) * 4 > limit and len(data.encode("utf-8", "surrogatepass")) > limit
    ):
        raise PusherError(CLIENT_EVENT_REJECTED, "Client event data is too large")


def check_first_message(app: App, msg: ClientMessage) -> None:
    """``first_message="signin"``: before a signin only ping/pong/signin are accepted."""
    if app.first_message == "signin" and not isinstance(msg, Signin | Ping | Pong):
        raise PusherError(UNAUTHORIZED, "Sign in before anything else")
