"""Sans-I/O Pusher Channels protocol v7 layer: no asyncio, no sockets, time passed in.

See /work/shared/reference/pusher-protocol.md for the wire facts. Modules:

* ``channels``   channel kinds and name rules
* ``signatures`` HMAC signatures (channel auth, signin, HTTP API, webhooks), socket ids
* ``connect``    the ``/app/{key}?protocol=7`` request and the connection quota
* ``messages``   client frame parsing and server frame encoders
* ``authorize``  may this connection subscribe / sign in / send this client event?
* ``presence``   presence ``channel_data`` and the per-user deduplicated roster
* ``cache``      last-event store of cache channels
* ``ratelimit``  client-event token bucket
* ``apps``       ``App``, ``AppStore``, ``StaticAppStore``, config parsing
* ``apirequest`` HTTP API request authentication
* ``httpapi``    HTTP API bodies, queries and responses
* ``webhooks``   webhook events, signed bodies, delivery scheduler
* ``errors``     ``PusherError``, ``SubscriptionError``, ``ApiError`` and the codes
"""

from __future__ import annotations

from .apirequest import DEFAULT_MAX_SKEW, auth_key_of, parse_query, verify_api_request
from .apps import (
    DEV_APP,
    WEBHOOK_EVENT_TYPES,
    App,
    AppStore,
    StaticAppStore,
    Webhook,
    app_from_mapping,
    webhook_from_mapping,
)
from .authorize import (
    MAX_WATCHLIST,
    SignedInUser,
    SubscriptionGrant,
    authorize_signin,
    authorize_subscription,
    check_client_event,
    check_first_message,
)
from .cache import CachedEvent, EventCache
from .channels import (
    MAX_CHANNEL_NAME_LENGTH,
    SERVER_TO_USER_PREFIX,
    ChannelKind,
    InvalidChannelName,
    classify,
    is_valid_channel_name,
    server_to_user_channel,
    server_to_user_id,
    validate_channel,
)
from .connect import (
    SUPPORTED_PROTOCOLS,
    ConnectRequest,
    check_connect,
    check_quota,
)
from .errors import ApiError, PusherError, SubscriptionError
from .httpapi import (
    ChannelQuery,
    ChannelsQuery,
    TriggerRequest,
    parse_batch,
    parse_channel_query,
    parse_channels_query,
    parse_terminate_user,
    parse_trigger,
    parse_users_query,
)
from .messages import (
    ClientEvent,
    ClientMessage,
    Ping,
    Pong,
    Signin,
    Subscribe,
    UnknownEvent,
    Unsubscribe,
    parse_client_message,
)
from .presence import (
    InvalidPresenceData,
    PresenceMember,
    PresenceRoster,
    parse_channel_data,
)
from .ratelimit import ClientEventLimiter, take
from .signatures import (
    api_string_to_sign,
    body_md5,
    is_valid_socket_id,
    sign_api_request,
    sign_channel,
    sign_user,
    verify_channel_auth,
    verify_user_auth,
    verify_webhook_signature,
    webhook_signature,
)
from .webhooks import (
    Delivery,
    WebhookEvent,
    WebhookScheduler,
    build_webhook_body,
    webhook_headers,
)

__all__ = [
    "DEFAULT_MAX_SKEW",
    "DEV_APP",
    "MAX_CHANNEL_NAME_LENGTH",
    "MAX_WATCHLIST",
    "SERVER_TO_USER_PREFIX",
    "SUPPORTED_PROTOCOLS",
    "WEBHOOK_EVENT_TYPES",
    "ApiError",
    "App",
    "AppStore",
    "CachedEvent",
    "ChannelKind",
    "ChannelQuery",
    "ChannelsQuery",
    "ClientEvent",
    "ClientEventLimiter",
    "ClientMessage",
    "ConnectRequest",
    "Delivery",
    "EventCache",
    "InvalidChannelName",
    "InvalidPresenceData",
    "Ping",
    "Pong",
    "PresenceMember",
    "PresenceRoster",
    "PusherError",
    "SignedInUser",
    "Signin",
    "StaticAppStore",
    "Subscribe",
    "SubscriptionError",
    "SubscriptionGrant",
    "TriggerRequest",
    "UnknownEvent",
    "Unsubscribe",
    "Webhook",
    "WebhookEvent",
    "WebhookScheduler",
    "api_string_to_sign",
    "app_from_mapping",
    "auth_key_of",
    "authorize_signin",
    "authorize_subscription",
    "body_md5",
    "build_webhook_body",
    "check_client_event",
    "check_connect",
    "check_first_message",
    "check_quota",
    "classify",
    "is_valid_channel_name",
    "is_valid_socket_id",
    "parse_batch",
    "parse_channel_data",
    "parse_channel_query",
    "parse_channels_query",
    "parse_client_message",
    "parse_query",
    "parse_terminate_user",
    "parse_trigger",
    "parse_users_query",
    "server_to_user_channel",
    "server_to_user_id",
    "sign_api_request",
    "sign_channel",
    "sign_user",
    "take",
    "validate_channel",
    "verify_api_request",
    "verify_channel_auth",
    "verify_user_auth",
    "verify_webhook_signature",
    "webhook_from_mapping",
    "webhook_headers",
    "webhook_signature",
]
