"""Target ``pusher_messages``: ``parse_client_message``, then what the gateway does with
the message: authorize_subscription / authorize_signin / check_client_event /
check_first_message with a test app, and the server frames that answer it.

Declared errors: ``PusherError`` (4300/4301, never fatal) from parsing; ``SubscriptionError``
from authorize_subscription; ``PusherError`` from authorize_signin (4009 fatal, 4302),
check_client_event (4301) and check_first_message (4009). Properties: with the option
bit "sign it", the target signs the message itself like an app's auth endpoint, so the
signature is never the reason for a refusal and the payload parsers behind it get
fuzzed; every accepted message renders to the frames the gateway sends (subscription
succeeded with the presence roster, member_added, signin_success, the relayed client
event), and every refusal renders as an error frame.
"""

from __future__ import annotations

import dataclasses

import orjson

from protocol.pusher import messages
from protocol.pusher.apps import App
from protocol.pusher.authorize import (
    authorize_signin,
    authorize_subscription,
    check_client_event,
    check_first_message,
)
from protocol.pusher.channels import (
    InvalidChannelName,
    is_valid_channel_name,
    server_to_user_channel,
    validate_channel,
)
from protocol.pusher.errors import PusherError, SubscriptionError
from protocol.pusher.messages import ClientEvent, Signin, Subscribe, parse_client_message
from protocol.pusher.presence import PresenceRoster
from protocol.pusher.signatures import sign_channel, sign_user

from .reader import Reader

SOCKET_ID = "1.4242"
APPS = (
    App(id="1", key="key-1", secret="secret-1", client_events=True),
    App(id="2", key="key-2", secret="secret-2", client_events=False, max_event_payload_kb=1),
    App(id="3", key="key-3", secret="secret-3", client_events=True, first_message="signin"),
    App(id="4", key="key-4", secret="secret-4", client_events=True, max_presence_members=1),
)


def _subscribe(app: App, msg: Subscribe, sign: bool, user_id: str | None) -> None:
    if sign:
        try:
            presence = validate_channel(msg.channel, allow_server_to_user=True).is_presence
        except InvalidChannelName:
            presence = False
        auth = sign_channel(
            app.key, app.secret, SOCKET_ID, msg.channel, msg.channel_data if presence else None
        )
        msg = dataclasses.replace(msg, auth=auth)
    try:
        grant = authorize_subscription(app, SOCKET_ID, msg, user_id=user_id)
    except SubscriptionError as exc:
        assert exc.channel == msg.channel
        assert not (sign and exc.message == "Invalid signature")
        messages.subscription_error_from(exc)
        if exc.is_auth_failure:
            messages.error(exc.message, exc.code)
        return
    assert grant.channel == msg.channel
    if grant.member is None:
        messages.subscription_succeeded(grant.channel)
        return
    roster = PresenceRoster(app.max_presence_members)
    roster.add(grant.channel, "1.1", "someone-else", {"name": "x"})
    try:
        roster.add(grant.channel, SOCKET_ID, grant.member.user_id, grant.member.user_info)
    except SubscriptionError as exc:
        messages.subscription_error_from(exc)
        return
    messages.subscription_succeeded(grant.channel, roster.members(grant.channel))
    messages.member_added(grant.channel, grant.member.user_id, grant.member.user_info)


def _signin(app: App, msg: Signin, sign: bool) -> None:
    if sign:
        msg = Signin(sign_user(app.key, app.secret, SOCKET_ID, msg.user_data), msg.user_data)
    try:
        user = authorize_signin(app, SOCKET_ID, msg)
    except PusherError as exc:
        assert exc.code in (4009, 4302), exc.code
        assert not (sign and exc.message == "Invalid signin signature")
        messages.error_from(exc)
        return
    assert is_valid_channel_name(server_to_user_channel(user.id), allow_server_to_user=True)
    messages.signin_success(user.user_data)
    messages.watchlist_events([("online", user.watchlist)])
    if user.user_info is not None:
        messages.member_added("presence-x", user.id, user.user_info)


def _client_event(app: App, msg: ClientEvent) -> None:
    try:
        kind = validate_channel(msg.channel)
    except InvalidChannelName:
        kind = None
    try:
        check_client_event(app, msg, kind)
    except PusherError as exc:
        assert exc.code == 4301, exc.code
        messages.error_from(exc)
        return
    relayed = orjson.loads(messages.channel_event_bytes(msg.event, msg.channel, msg.data, "u"))
    assert relayed["data"] == msg.data and relayed["event"] == msg.event


def check(data: bytes) -> None:
    reader = Reader(data)
    options = reader.byte()
    frame: str | bytes = reader.rest()
    if options & 1:
        frame = frame.decode("utf-8", "surrogateescape")  # as str, lone surrogates included
    try:
        msg = parse_client_message(frame)
    except PusherError as exc:
        assert exc.code in (4300, 4301) and not exc.fatal, exc.code
        messages.error_from(exc)
        return
    app = APPS[(options >> 1) & 3]
    sign = bool(options & 8)
    try:
        check_first_message(app, msg)
    except PusherError as exc:
        assert exc.code == 4009 and exc.fatal
    if isinstance(msg, Subscribe):
        _subscribe(app, msg, sign, "u1" if options & 16 else None)
    elif isinstance(msg, Signin):
        _signin(app, msg, sign)
    elif isinstance(msg, ClientEvent):
        _client_event(app, msg)
