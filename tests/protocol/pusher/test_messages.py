from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pusher import (
    ClientEvent,
    Ping,
    Pong,
    PusherError,
    Signin,
    Subscribe,
    UnknownEvent,
    Unsubscribe,
    parse_client_message,
)
from protocol.pusher import messages as m
from protocol.pusher.errors import CLIENT_EVENT_REJECTED, INVALID_MESSAGE, SubscriptionError


def frame(**kw) -> str:
    return orjson.dumps(kw).decode()


# -- parsing ----------------------------------------------------------------------------


def test_ping_pong():
    assert parse_client_message('{"event":"pusher:ping","data":{}}') == Ping()
    assert parse_client_message(b'{"event":"pusher:pong"}') == Pong()


def test_subscribe_variants():
    assert parse_client_message(
        frame(event="pusher:subscribe", data={"channel": "a"})
    ) == Subscribe("a")
    assert parse_client_message(
        frame(
            event="pusher:subscribe",
            data={"channel": "presence-a", "auth": "k:s", "channel_data": '{"user_id":1}'},
        )
    ) == Subscribe("presence-a", "k:s", '{"user_id":1}')
    # double-encoded data (some non-JS clients) is tolerated
    assert parse_client_message(
        frame(event="pusher:subscribe", data='{"channel":"a"}')
    ) == Subscribe("a")


def test_unsubscribe_signin():
    assert parse_client_message(
        frame(event="pusher:unsubscribe", data={"channel": "a"})
    ) == Unsubscribe("a")
    assert parse_client_message(
        frame(event="pusher:signin", data={"auth": "k:s", "user_data": '{"id":"1"}'})
    ) == Signin("k:s", '{"id":"1"}')


def test_client_event_data_kept_or_encoded():
    assert parse_client_message(
        frame(event="client-x", channel="private-a", data='{"a":1}')
    ) == ClientEvent("client-x", "private-a", '{"a":1}')
    assert parse_client_message(
        frame(event="client-x", channel="private-a", data={"a": [1, 2]})
    ) == ClientEvent("client-x", "private-a", '{"a":[1,2]}')
    assert parse_client_message(frame(event="client-x", channel="private-a")) == ClientEvent(
        "client-x", "private-a", "null"
    )


def test_unknown_pusher_event_is_ignorable():
    assert parse_client_message(frame(event="pusher:future")) == UnknownEvent("pusher:future")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", INVALID_MESSAGE),
        ("", INVALID_MESSAGE),
        ("[1,2]", INVALID_MESSAGE),
        ('"x"', INVALID_MESSAGE),
        ("{}", INVALID_MESSAGE),
        ('{"event":1}', INVALID_MESSAGE),
        ('{"event":""}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe"}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe","data":[]}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe","data":"nope"}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe","data":{}}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe","data":{"channel":5}}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe","data":{"channel":"a","auth":5}}', INVALID_MESSAGE),
        ('{"event":"pusher:subscribe","data":{"channel":"a","channel_data":{}}}', INVALID_MESSAGE),
        ('{"event":"pusher:unsubscribe","data":{}}', INVALID_MESSAGE),
        ('{"event":"pusher:signin","data":{"auth":"x"}}', INVALID_MESSAGE),
        ('{"event":"pusher:signin","data":{"auth":"x","user_data":{}}}', INVALID_MESSAGE),
        ('{"event":"client-x","data":{}}', INVALID_MESSAGE),
        ('{"event":"client-x","channel":null}', INVALID_MESSAGE),
        ('{"event":"pusher_internal:member_added"}', INVALID_MESSAGE),
        ('{"event":"my-event","channel":"private-a"}', CLIENT_EVENT_REJECTED),
        ('{"event":"client-' + "x" * 200 + '","channel":"private-a"}', CLIENT_EVENT_REJECTED),
        (b"\xff\xfe", INVALID_MESSAGE),
    ],
)
def test_parse_errors(raw, code):
    with pytest.raises(PusherError) as info:
        parse_client_message(raw)
    assert info.value.code == code
    assert not info.value.fatal


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_parse_never_raises_anything_else(raw):
    try:
        parse_client_message(raw)
    except PusherError:
        pass


@given(
    st.text(min_size=1, max_size=50),
    st.one_of(st.none(), st.text(max_size=50)),
    st.one_of(st.none(), st.text(max_size=50)),
)
def test_subscribe_round_trip(channel, auth, channel_data):
    data = {"channel": channel}
    if auth is not None:
        data["auth"] = auth
    if channel_data is not None:
        data["channel_data"] = channel_data
    assert parse_client_message(frame(event="pusher:subscribe", data=data)) == Subscribe(
        channel, auth, channel_data
    )


# -- encoders ---------------------------------------------------------------------------


def decode(text: str) -> dict:
    assert isinstance(text, str)
    return orjson.loads(text)


def test_connection_established_double_encoded():
    out = decode(m.connection_established("123.456"))
    assert out["event"] == "pusher:connection_established"
    assert isinstance(out["data"], str)
    assert orjson.loads(out["data"]) == {"socket_id": "123.456", "activity_timeout": 120}
    assert (
        orjson.loads(decode(m.connection_established("1.2", 30))["data"])["activity_timeout"] == 30
    )


def test_ping_pong_error():
    assert decode(m.pong()) == {"event": "pusher:pong", "data": "{}"}
    assert decode(m.ping()) == {"event": "pusher:ping", "data": "{}"}
    out = decode(m.error("Nope", 4009))
    assert orjson.loads(out["data"]) == {"message": "Nope", "code": 4009}
    out = decode(m.error_from(PusherError(4301, "slow down")))
    assert orjson.loads(out["data"]) == {"message": "slow down", "code": 4301}


def test_subscription_succeeded_plain_and_presence():
    out = decode(m.subscription_succeeded("a"))
    assert out == {"event": "pusher_internal:subscription_succeeded", "channel": "a", "data": "{}"}
    out = decode(m.subscription_succeeded("presence-a", {"1": {"n": "A"}, "2": None}))
    assert orjson.loads(out["data"]) == {
        "presence": {"ids": ["1", "2"], "hash": {"1": {"n": "A"}, "2": None}, "count": 2}
    }


def test_subscription_error():
    exc = SubscriptionError("private-a", 4009, "Invalid signature")
    out = decode(m.subscription_error_from(exc))
    assert out["event"] == "pusher:subscription_error"
    assert out["channel"] == "private-a"
    assert orjson.loads(out["data"]) == {
        "type": "AuthError",
        "error": "Invalid signature",
        "status": 401,
    }


def test_member_events_and_misc():
    out = decode(m.member_added("presence-a", "1", {"n": 1}))
    assert out["event"] == "pusher_internal:member_added"
    assert orjson.loads(out["data"]) == {"user_id": "1", "user_info": {"n": 1}}
    assert orjson.loads(decode(m.member_added("presence-a", "1"))["data"]) == {"user_id": "1"}
    out = decode(m.member_removed("presence-a", "1"))
    assert orjson.loads(out["data"]) == {"user_id": "1"}
    assert decode(m.cache_miss("cache-a")) == {"event": "pusher:cache_miss", "channel": "cache-a"}
    out = decode(m.subscription_count("a", 3))
    assert orjson.loads(out["data"]) == {"subscription_count": 3}
    out = decode(m.signin_success('{"id":"1"}'))
    assert orjson.loads(out["data"]) == {"user_data": '{"id":"1"}'}
    out = decode(m.watchlist_events([("online", ["1", "2"]), ("offline", ("3",))]))
    assert orjson.loads(out["data"]) == {
        "events": [
            {"name": "online", "user_ids": ["1", "2"]},
            {"name": "offline", "user_ids": ["3"]},
        ]
    }


def test_channel_event_data_verbatim():
    data = '{"ciphertext":"abc","nonce":"xyz"}'
    out = decode(m.channel_event("ev", "private-encrypted-a", data))
    assert out == {"event": "ev", "channel": "private-encrypted-a", "data": data}
    raw = m.channel_event_bytes("client-x", "presence-a", "{}", user_id="7")
    assert isinstance(raw, bytes)
    assert orjson.loads(raw)["user_id"] == "7"


@given(st.text(max_size=100), st.text(max_size=100), st.text(max_size=300))
def test_channel_event_round_trip(event, channel, data):
    assert orjson.loads(m.channel_event_bytes(event, channel, data)) == {
        "event": event,
        "channel": channel,
        "data": data,
    }


@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_client_event_data_too_deep_to_re_encode_is_invalid_message(depth):
    # orjson parses 1024 levels but encodes 254: a TypeError used to escape here.
    raw = '{"event":"client-x","channel":"private-a","data":' + ("[" * depth + "]" * depth) + "}"
    with pytest.raises(PusherError) as info:
        parse_client_message(raw)
    assert info.value.code == INVALID_MESSAGE


def test_client_event_data_at_orjson_depth_is_kept():
    nested = "[" * 200 + "]" * 200
    raw = '{"event":"client-x","channel":"private-a","data":' + nested + "}"
    assert parse_client_message(raw).data == nested
