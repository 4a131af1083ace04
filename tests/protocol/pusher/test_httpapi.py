from __future__ import annotations

import dataclasses

import orjson
import pytest

from protocol.pusher import (
    ApiError,
    App,
    ChannelKind,
    TriggerRequest,
    parse_batch,
    parse_channel_query,
    parse_channels_query,
    parse_terminate_user,
    parse_trigger,
    parse_users_query,
)
from protocol.pusher import httpapi as h

APP = App(id="1", key="k", secret="s")


def body(**kw) -> bytes:
    return orjson.dumps(kw)


def status_of(fn, *args) -> int:
    with pytest.raises(ApiError) as info:
        fn(*args)
    return info.value.status


# -- POST /events ------------------------------------------------------------------------


def test_trigger_channels_and_channel():
    req = parse_trigger(body(name="e", data="d", channels=["a", "b", "a"]), APP)
    assert req == TriggerRequest("e", "d", ("a", "b"), None, frozenset())
    req = parse_trigger(
        body(name="e", data="d", channel="presence-a", socket_id="1.2", info="user_count"),
        APP,
    )
    assert req.channels == ("presence-a",)
    assert req.socket_id == "1.2" and req.info == {"user_count"}


def test_trigger_to_server_to_user_channel():
    req = parse_trigger(body(name="e", data="d", channels=["#server-to-user-42"]), APP)
    assert req.channels == ("#server-to-user-42",)


def test_trigger_limits_inclusive():
    parse_trigger(
        body(name="e" * 200, data="x" * 10240, channels=[f"c{i}" for i in range(100)]), APP
    )


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (body(data="d", channels=["a"]), 400),
        (body(name="", data="d", channels=["a"]), 400),
        (body(name=5, data="d", channels=["a"]), 400),
        (body(name="e" * 201, data="d", channels=["a"]), 400),
        (body(name="e", channels=["a"]), 400),
        (body(name="e", data={"a": 1}, channels=["a"]), 400),
        (body(name="e", data="x" * 10241, channels=["a"]), 413),
        (body(name="e", data="é" * 5121, channels=["a"]), 413),
        (body(name="e", data="d"), 400),
        (body(name="e", data="d", channels=[]), 400),
        (body(name="e", data="d", channels="a"), 400),
        (body(name="e", data="d", channels=[f"c{i}" for i in range(101)]), 400),
        (body(name="e", data="d", channels=["bad name"]), 400),
        (body(name="e", data="d", channels=[5]), 400),
        (body(name="e", data="d", channel="a" * 165), 400),
        (body(name="e", data="d", channels=["private-encrypted-a", "b"]), 400),
        (body(name="e", data="d", channels=["a"], socket_id="abc"), 400),
        (body(name="e", data="d", channels=["a"], socket_id="1.2.3"), 400),
        (body(name="e", data="d", channels=["a"], socket_id=12), 400),
        (body(name="e", data="d", channels=["a"], info="bogus"), 400),
        (body(name="e", data="d", channels=["a"], info=["user_count"]), 400),
    ],
)
def test_trigger_refusals(payload, status):
    assert status_of(parse_trigger, payload, APP) == status


def test_trigger_limits_follow_app():
    small = dataclasses.replace(APP, max_event_payload_kb=1, max_channels_per_event=2)
    assert status_of(parse_trigger, body(name="e", data="x" * 1025, channels=["a"]), small) == 413
    assert (
        status_of(parse_trigger, body(name="e", data="x", channels=["a", "b", "c"]), small) == 400
    )


# -- POST /batch_events ------------------------------------------------------------------


def test_batch_ok():
    items = [{"channel": f"c{i}", "name": "e", "data": "d"} for i in range(10)]
    events = parse_batch(body(batch=items), APP)
    assert len(events) == 10 and events[3].channels == ("c3",)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (body(batch=[]), 400),
        (body(), 400),
        (body(batch={}), 400),
        (body(batch=[{"channel": "a", "name": "e", "data": "d"}] * 11), 400),
        (body(batch=["x"]), 400),
        (body(batch=[{"name": "e", "data": "d"}]), 400),
        (body(batch=[{"channel": "a b", "name": "e", "data": "d"}]), 400),
        (body(batch=[{"channel": "a", "name": "e", "data": "x" * 10241}]), 413),
        (body(batch=[{"channel": "a", "name": "e", "data": "d", "socket_id": "x"}]), 400),
    ],
)
def test_batch_refusals(payload, status):
    assert status_of(parse_batch, payload, APP) == status


def test_batch_size_follows_app():
    items = [{"channel": "a", "name": "e", "data": "d"}] * 3
    assert (
        status_of(parse_batch, body(batch=items), dataclasses.replace(APP, max_batch_size=2)) == 400
    )


# -- GET queries -------------------------------------------------------------------------


def test_channels_query():
    q = parse_channels_query([("filter_by_prefix", "presence-"), ("info", "user_count")])
    assert (q.prefix, q.info) == ("presence-", {"user_count"})
    q = parse_channels_query({})
    assert (q.prefix, q.info) == (None, frozenset())
    assert parse_channels_query({"info": "subscription_count"}).info == {"subscription_count"}


@pytest.mark.parametrize(
    "params",
    [
        {"info": "user_count"},
        {"info": "user_count", "filter_by_prefix": "private-"},
        {"info": "cache"},
        {"info": "bogus"},
    ],
)
def test_channels_query_refusals(params):
    assert status_of(parse_channels_query, params) == 400


def test_channel_query():
    q = parse_channel_query("presence-cache-a", {"info": "user_count,subscription_count,cache"})
    assert q.kind is ChannelKind.PRESENCE_CACHE
    assert q.info == {"user_count", "subscription_count", "cache"}
    assert parse_channel_query("a", {"info": "subscription_count"}).info == {"subscription_count"}
    assert parse_channel_query("a", {}).info == frozenset()


@pytest.mark.parametrize(
    ("channel", "info"),
    [
        ("private-a", "user_count"),
        ("presence-a", "cache"),
        ("a", "cache"),
        ("a", "members"),
        ("bad name", ""),
    ],
)
def test_channel_query_not_applicable(channel, info):
    assert status_of(parse_channel_query, channel, {"info": info}) == 400


def test_users_query():
    assert parse_users_query("presence-a") is ChannelKind.PRESENCE
    assert parse_users_query("presence-cache-a") is ChannelKind.PRESENCE_CACHE
    for channel in ("private-a", "a", "cache-a", "bad name"):
        assert status_of(parse_users_query, channel) == 400


def test_terminate_user():
    assert parse_terminate_user("u-1") == "u-1"
    for bad in ("", "a b", "x" * 129):
        assert status_of(parse_terminate_user, bad) == 400


# -- responses ---------------------------------------------------------------------------


def test_response_bodies():
    assert h.trigger_response() == b"{}"
    assert orjson.loads(h.trigger_response({"presence-a": {"user_count": 2}})) == {
        "channels": {"presence-a": {"user_count": 2}}
    }
    assert h.batch_response() == b"{}"
    assert orjson.loads(h.batch_response([{}, {"subscription_count": 1}])) == {
        "batch": [{}, {"subscription_count": 1}]
    }
    assert orjson.loads(h.channels_response({"a": {}})) == {"channels": {"a": {}}}
    assert orjson.loads(h.channel_response(False)) == {"occupied": False}
    assert orjson.loads(
        h.channel_response(True, user_count=1, subscription_count=2, cache={"data": "d", "ttl": 5})
    ) == {
        "occupied": True,
        "user_count": 1,
        "subscription_count": 2,
        "cache": {"data": "d", "ttl": 5},
    }
    assert orjson.loads(h.users_response(["1", "2"])) == {"users": [{"id": "1"}, {"id": "2"}]}
    assert orjson.loads(h.error_body(ApiError(400, "nope"))) == {"error": "nope"}


# -- bodies produced by the official library ---------------------------------------------


def _official():
    import pusher

    return pusher.Pusher(app_id="1", key="k", secret="s")._pusher_client


def test_official_trigger_body_parses():
    req = _official().trigger.make_request(["a", "presence-b"], "my-event", {"x": 1}, "1.2")
    parsed = parse_trigger(req.body, APP)
    assert parsed.name == "my-event" and parsed.channels == ("a", "presence-b")
    assert orjson.loads(parsed.data) == {"x": 1} and parsed.socket_id == "1.2"


def test_official_send_to_user_body_parses():
    import pusher

    client = pusher.Pusher(app_id="1", key="k", secret="s")
    captured: list = []
    client._pusher_client.http.send_request = captured.append  # capture instead of sending
    client.send_to_user("u1", "ev", {"a": 1})
    parsed = parse_trigger(captured[0].body, APP)
    assert parsed.channels == ("#server-to-user-u1",)


def test_official_batch_body_parses():
    req = _official().trigger_batch.make_request(
        [
            {"channel": "a", "name": "e1", "data": "x"},
            {"channel": "b", "name": "e2", "data": {"y": 2}},
        ]
    )
    events = parse_batch(req.body, APP)
    assert [(e.name, e.channels, e.data) for e in events] == [
        ("e1", ("a",), "x"),
        ("e2", ("b",), '{"y": 2}'),
    ]
