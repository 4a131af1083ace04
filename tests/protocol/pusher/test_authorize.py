from __future__ import annotations

import dataclasses

import orjson
import pytest

from protocol.pusher import (
    DEV_APP,
    App,
    ChannelKind,
    ClientEvent,
    PusherError,
    Signin,
    Subscribe,
    SubscriptionError,
    authorize_signin,
    authorize_subscription,
    check_client_event,
    check_first_message,
    sign_channel,
    sign_user,
)
from protocol.pusher.errors import (
    CLIENT_EVENT_REJECTED,
    INVALID_MESSAGE,
    UNAUTHORIZED,
    WATCHLIST_TOO_BIG,
)
from protocol.pusher.messages import Ping, Unsubscribe

APP = DEV_APP
SID = "123.456"


def sub(channel: str, channel_data: str | None = None, *, sid: str = SID, app: App = APP):
    return Subscribe(
        channel, sign_channel(app.key, app.secret, sid, channel, channel_data), channel_data
    )


def test_public_needs_nothing():
    grant = authorize_subscription(APP, SID, Subscribe("news"))
    assert (grant.channel, grant.kind, grant.member) == ("news", ChannelKind.PUBLIC, None)
    assert authorize_subscription(APP, SID, Subscribe("cache-x")).kind is ChannelKind.CACHE


@pytest.mark.parametrize(
    "channel",
    ["private-a", "private-encrypted-a", "private-cache-a", "private-encrypted-cache-a"],
)
def test_private_family(channel):
    assert authorize_subscription(APP, SID, sub(channel)).channel == channel


def test_private_ignores_channel_data():
    msg = sub("private-a")
    msg = dataclasses.replace(msg, channel_data='{"user_id":1}')
    authorize_subscription(APP, SID, msg)


@pytest.mark.parametrize(
    "msg",
    [
        Subscribe("private-a"),
        Subscribe("private-a", "app-key:" + "0" * 64),
        Subscribe("private-a", "garbage"),
        sub("private-a", sid="9.9"),  # signed for another socket
        sub("private-b"),  # signed for another channel (below: renamed)
        Subscribe("presence-a", sign_channel("app-key", "app-secret", SID, "presence-a")),
        Subscribe("presence-a", sign_channel("app-key", "app-secret", SID, "presence-a", "{}")),
        sub("private-a", app=App(id="2", key="other", secret="app-secret")),
    ],
)
def test_auth_failures(msg):
    if msg.channel == "private-b":
        msg = dataclasses.replace(msg, channel="private-a")
    with pytest.raises(SubscriptionError) as info:
        authorize_subscription(APP, SID, msg)
    err = info.value
    assert err.code == UNAUTHORIZED and err.is_auth_failure and err.fatal
    assert (err.type, err.status, err.channel) == ("AuthError", 401, msg.channel)


def test_presence_grant_and_member():
    data = '{"user_id":"u1","user_info":{"name":"A"}}'
    grant = authorize_subscription(APP, SID, sub("presence-cache-r", data))
    assert grant.kind is ChannelKind.PRESENCE_CACHE
    assert grant.member is not None
    assert (grant.member.user_id, grant.member.user_info) == ("u1", {"name": "A"})


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[]",
        "{}",
        '{"user_id":null}',
        '{"user_id":true}',
        '{"user_id":1.5}',
        '{"user_id":""}',
        orjson.dumps({"user_id": "x" * 129}).decode(),
        orjson.dumps({"user_id": 1, "user_info": {"b": "x" * 1100}}).decode(),
    ],
)
def test_presence_bad_channel_data_with_good_signature(data):
    with pytest.raises(SubscriptionError) as info:
        authorize_subscription(APP, SID, sub("presence-r", data))
    err = info.value
    assert (err.code, err.type, err.status) == (INVALID_MESSAGE, "InvalidChannelData", 400)
    assert not err.is_auth_failure


def test_presence_limits_inclusive():
    ok = orjson.dumps({"user_id": "x" * 128, "user_info": "y" * 1000}).decode()
    authorize_subscription(APP, SID, sub("presence-r", ok))


def test_invalid_channel_name():
    with pytest.raises(SubscriptionError) as info:
        authorize_subscription(APP, SID, Subscribe("bad name"))
    assert (info.value.code, info.value.type, info.value.status) == (
        INVALID_MESSAGE,
        "InvalidChannel",
        400,
    )


def test_server_to_user_needs_matching_signin():
    msg = Subscribe("#server-to-user-u1")
    assert authorize_subscription(APP, SID, msg, user_id="u1").kind is ChannelKind.SERVER_TO_USER
    for user in (None, "u2"):
        with pytest.raises(SubscriptionError) as info:
            authorize_subscription(APP, SID, msg, user_id=user)
        assert (info.value.code, info.value.status) == (UNAUTHORIZED, 403)


# -- signin ------------------------------------------------------------------------------


def signin(user_data: str, *, sid: str = SID) -> Signin:
    return Signin(sign_user(APP.key, APP.secret, sid, user_data), user_data)


def test_signin_ok():
    data = '{"id":"u1","user_info":{"n":1},"watchlist":["a","b"]}'
    user = authorize_signin(APP, SID, signin(data))
    assert (user.id, user.user_info, user.watchlist, user.user_data) == (
        "u1",
        {"n": 1},
        ("a", "b"),
        data,
    )
    assert authorize_signin(APP, SID, signin('{"id":7}')).id == "7"


@pytest.mark.parametrize(
    "msg",
    [
        Signin("app-key:" + "0" * 64, '{"id":"u1"}'),
        signin('{"id":"u1"}', sid="1.1"),
        signin("nope"),
        signin("[]"),
        signin("{}"),
        signin('{"id":""}'),
        signin('{"id":"a b"}'),
        signin(orjson.dumps({"id": "x" * 129}).decode()),
        signin('{"id":"u","watchlist":"a"}'),
        signin('{"id":"u","watchlist":[null]}'),
        signin(orjson.dumps({"id": "u", "user_info": "x" * 1100}).decode()),
    ],
)
def test_signin_refused_4009(msg):
    with pytest.raises(PusherError) as info:
        authorize_signin(APP, SID, msg)
    assert info.value.code == UNAUTHORIZED and info.value.fatal


def test_watchlist_too_big():
    authorize_signin(APP, SID, signin(orjson.dumps({"id": "u", "watchlist": ["a"] * 100}).decode()))
    with pytest.raises(PusherError) as info:
        authorize_signin(
            APP, SID, signin(orjson.dumps({"id": "u", "watchlist": ["a"] * 101}).decode())
        )
    assert info.value.code == WATCHLIST_TOO_BIG and not info.value.fatal


# -- client events -----------------------------------------------------------------------


def test_client_event_allowed():
    for kind in (ChannelKind.PRIVATE, ChannelKind.PRESENCE, ChannelKind.PRESENCE_CACHE):
        check_client_event(APP, ClientEvent("client-x", "c", "{}"), kind)


@pytest.mark.parametrize(
    ("app", "kind", "data", "message"),
    [
        (dataclasses.replace(APP, client_events=False), ChannelKind.PRIVATE, "{}", "not enabled"),
        (APP, None, "{}", "Not subscribed"),
        (APP, ChannelKind.PUBLIC, "{}", "only allowed"),
        (APP, ChannelKind.CACHE, "{}", "only allowed"),
        (APP, ChannelKind.PRIVATE_ENCRYPTED, "{}", "only allowed"),
        (APP, ChannelKind.SERVER_TO_USER, "{}", "only allowed"),
        (APP, ChannelKind.PRIVATE, "x" * 10241, "too large"),
        (APP, ChannelKind.PRIVATE, "é" * 5121, "too large"),  # bytes, not characters
    ],
)
def test_client_event_refused(app, kind, data, message):
    with pytest.raises(PusherError, match=message) as info:
        check_client_event(app, ClientEvent("client-x", "c", data), kind)
    assert info.value.code == CLIENT_EVENT_REJECTED and not info.value.fatal


def test_client_event_size_limit_inclusive():
    check_client_event(APP, ClientEvent("client-x", "c", "x" * 10240), ChannelKind.PRIVATE)
    check_client_event(APP, ClientEvent("client-x", "c", "é" * 5120), ChannelKind.PRIVATE)


def test_first_message_policy():
    strict = dataclasses.replace(APP, first_message="signin")
    check_first_message(APP, Subscribe("a"))
    check_first_message(strict, Ping())
    check_first_message(strict, Signin("a", "b"))
    for msg in (Subscribe("a"), Unsubscribe("a"), ClientEvent("client-a", "c", "")):
        with pytest.raises(PusherError) as info:
            check_first_message(strict, msg)
        assert info.value.code == UNAUTHORIZED


def test_deeply_nested_user_info_is_refused_not_raised():
    # A validly signed but deeply nested user_info: the declared errors only (issue 11).
    deep = "[" * 300 + "]" * 300
    channel_data = '{"user_id":"u1","user_info":' + deep + "}"
    with pytest.raises(SubscriptionError) as info:
        authorize_subscription(APP, SID, sub("presence-a", channel_data))
    assert info.value.type == "InvalidChannelData"
    user_data = '{"id":"u1","user_info":' + deep + "}"
    msg = Signin(sign_user(APP.key, APP.secret, SID, user_data), user_data)
    with pytest.raises(PusherError) as err:
        authorize_signin(APP, SID, msg)
    assert err.value.code == UNAUTHORIZED
