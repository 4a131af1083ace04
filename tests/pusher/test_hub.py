"""The sans-I/O Pusher hub, with no sockets at all: handles are strings, effects are data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App, Webhook
from protocol.pusher.authorize import SignedInUser, SubscriptionGrant
from protocol.pusher.channels import classify
from protocol.pusher.errors import PusherError, SubscriptionError
from protocol.pusher.hub import Delivery, Effects, PusherHub, Session, Target
from protocol.pusher.messages import ClientEvent
from protocol.pusher.presence import PresenceMember

APP = App(id="1", key="k1", secret="s1", client_events=True, max_presence_members=2)
HOOKED = App(id="2", key="k2", secret="s2", webhooks=(Webhook("http://127.0.0.1:9/"),))


def grant(channel: str, user: str | None = None, **info: Any) -> SubscriptionGrant:
    member = PresenceMember(user, info or None) if user is not None else None
    return SubscriptionGrant(channel, classify(channel), member)


def replies(effects: Effects) -> list[Any]:
    return [json.loads(r) for r in effects.replies]


def events(effects: Effects) -> list[str]:
    return [r["event"] for r in replies(effects)]


def payload(delivery: Delivery) -> Any:
    return json.loads(delivery.payload)


@pytest.fixture
def hub() -> PusherHub[str]:
    return PusherHub()


def open_(hub: PusherHub[str], name: str, app: App = APP) -> Session[str]:
    return hub.open(app, name, f"1.{abs(hash(name)) % 10**9}", 0.0)


def test_public_subscribe_publish_and_targets(hub: PusherHub[str]) -> None:
    a, b = open_(hub, "a"), open_(hub, "b")
    fx = hub.subscribe(a, grant("news"), 0.0)
    assert events(fx) == ["pusher_internal:subscription_succeeded"]
    assert not fx.deliveries and not fx.webhooks  # no webhooks configured
    hub.subscribe(b, grant("news"), 0.0)
    delivery = hub.publish(APP, "news", "posted", '{"n":1}', exclude_socket=a.socket_id, now=1.0)
    assert (delivery.target, delivery.name, delivery.exclude) == (
        Target.CHANNEL,
        "news",
        a.socket_id,
    )
    assert payload(delivery) == {"event": "posted", "channel": "news", "data": '{"n":1}'}
    assert hub.targets(delivery) == {"a", "b"}  # the shell skips ``exclude``
    state = hub.channel_state(APP, "news")
    assert (state.occupied, state.subscription_count, state.user_count) == (True, 2, None)
    # Subscribing again confirms and counts nothing.
    assert events(hub.subscribe(a, grant("news"), 0.0)) == [
        "pusher_internal:subscription_succeeded"
    ]
    assert hub.channel_state(APP, "news").subscription_count == 2


def test_presence_first_and_last_member(hub: PusherHub[str]) -> None:
    a1, a2, b = open_(hub, "a1"), open_(hub, "a2"), open_(hub, "b")
    first = hub.subscribe(a1, grant("presence-r", "alice", name="A"), 0.0)
    (added,) = first.deliveries
    assert added.target is Target.CHANNEL and added.exclude == a1.socket_id  # not the joiner
    assert payload(added)["event"] == "pusher_internal:member_added"
    roster = json.loads(replies(first)[0]["data"])["presence"]
    assert roster == {"ids": ["alice"], "hash": {"alice": {"name": "A"}}, "count": 1}
    second = hub.subscribe(a2, grant("presence-r", "alice", name="A"), 0.0)
    assert not second.deliveries  # alice is already there
    hub.subscribe(b, grant("presence-r", "bob"), 0.0)
    state = hub.channel_state(APP, "presence-r")
    assert (state.subscription_count, state.user_count) == (3, 2)
    assert sorted(hub.presence_users(APP, "presence-r")) == ["alice", "bob"]
    assert not hub.unsubscribe(a1, "presence-r").deliveries  # alice still has a2
    (removed,) = hub.unsubscribe(a2, "presence-r").deliveries
    assert payload(removed)["event"] == "pusher_internal:member_removed"
    assert json.loads(payload(removed)["data"]) == {"user_id": "alice"}


def test_presence_full_changes_nothing(hub: PusherHub[str]) -> None:
    for name in ("x", "y"):
        hub.subscribe(open_(hub, name), grant("presence-full", name), 0.0)
    late = open_(hub, "z")
    with pytest.raises(SubscriptionError) as info:
        hub.subscribe(late, grant("presence-full", "z"), 0.0)
    assert info.value.code == 4304
    assert late.channels is None and hub.channel_state(APP, "presence-full").subscription_count == 2
    assert hub.targets(Delivery(Target.CHANNEL, APP.id, "presence-full", b"")) == {"x", "y"}


def test_channels_per_connection_bound(hub: PusherHub[str]) -> None:
    hub.max_channels_per_connection = 2
    a = open_(hub, "a")
    hub.subscribe(a, grant("c1"), 0.0)
    hub.subscribe(a, grant("c2"), 0.0)
    with pytest.raises(SubscriptionError) as info:
        hub.subscribe(a, grant("c3"), 0.0)
    assert info.value.type == "LimitReached"


def test_webhooks_are_transitions(hub: PusherHub[str]) -> None:
    a, b = open_(hub, "a", HOOKED), open_(hub, "b", HOOKED)
    fx = hub.subscribe(a, grant("presence-w", "u1"), 0.0)
    assert [e.name for e in fx.webhooks] == [wh.CHANNEL_OCCUPIED, wh.MEMBER_ADDED]
    fx = hub.subscribe(b, grant("presence-w", "u1"), 0.0)
    assert fx.webhooks == []  # occupied already, u1 present already
    assert hub.unsubscribe(a, "presence-w").webhooks == []
    fx = hub.close(b)
    assert [e.name for e in fx.webhooks] == [wh.MEMBER_REMOVED, wh.CHANNEL_VACATED]


def test_cache_channel_replay_and_miss(hub: PusherHub[str]) -> None:
    a = open_(hub, "a", HOOKED)
    miss = hub.subscribe(a, grant("cache-p"), 0.0)
    assert events(miss)[-1] == "pusher:cache_miss"
    assert wh.CACHE_MISS in [e.name for e in miss.webhooks]
    hub.publish(HOOKED, "cache-p", "tick", "1", now=10.0)
    b = open_(hub, "b", HOOKED)
    hit = hub.subscribe(b, grant("cache-p"), 20.0)
    assert replies(hit)[-1] == {"event": "tick", "channel": "cache-p", "data": "1"}
    assert hub.cached(HOOKED, "cache-p", 20.0) is not None
    assert hub.cached(HOOKED, "cache-p", 10.0 + HOOKED.cache_ttl) is None  # expired


def test_signin_watchlist_and_server_to_user(hub: PusherHub[str]) -> None:
    w, b1, b2 = open_(hub, "w"), open_(hub, "b1"), open_(hub, "b2")
    fx = hub.signin(w, SignedInUser("w", None, ("b", "c"), '{"id":"w"}'))
    assert events(fx) == ["pusher:signin_success"]  # nobody watched is online yet
    (online,) = hub.signin(b1, SignedInUser("b", None, (), '{"id":"b"}')).deliveries
    assert (online.target, online.name) == (Target.WATCHERS, "b")
    assert hub.targets(online) == {"w"}
    assert not hub.signin(b2, SignedInUser("b", None, (), '{"id":"b"}')).deliveries
    to_user = hub.publish(APP, "#server-to-user-b", "notice", "{}", now=0.0)
    assert to_user.target is Target.USER and hub.targets(to_user) == {"b1", "b2"}
    assert hub.user_handles(APP, "b") in (["b1", "b2"], ["b2", "b1"])
    late = open_(hub, "late")
    fx = hub.signin(late, SignedInUser("late", None, ("b", "c"), '{"id":"late"}'))
    initial = json.loads(replies(fx)[1]["data"])
    assert initial == {"events": [{"name": "online", "user_ids": ["b"]}]}
    assert not hub.close(b1).deliveries
    (offline,) = hub.close(b2).deliveries
    assert json.loads(payload(offline)["data"])["events"][0]["name"] == "offline"
    assert hub.targets(offline) == {"w", "late"}


def test_client_events_rules_and_rate_limit(hub: PusherHub[str]) -> None:
    a, b = open_(hub, "a"), open_(hub, "b")
    event = ClientEvent("client-x", "presence-c", "d")
    with pytest.raises(PusherError):
        hub.client_event(a, event, 0.0)  # not subscribed
    hub.subscribe(a, grant("presence-c", "ua"), 0.0)
    hub.subscribe(b, grant("presence-c", "ub"), 0.0)
    (relay,) = hub.client_event(a, event, 0.0).deliveries
    assert relay.exclude == a.socket_id and payload(relay)["user_id"] == "ua"
    sent = 1
    with pytest.raises(PusherError) as info:
        for _ in range(APP.max_client_events_per_second):
            hub.client_event(a, event, 0.0)
            sent += 1
    assert info.value.code == 4301 and sent == APP.max_client_events_per_second
    hub.client_event(a, event, 1.0)  # refilled a second later
    public = open_(hub, "p")
    hub.subscribe(public, grant("news"), 0.0)
    with pytest.raises(PusherError):
        hub.client_event(public, ClientEvent("client-x", "news", "d"), 0.0)


def test_close_leaves_no_trace(hub: PusherHub[str]) -> None:
    sessions = [open_(hub, f"s{i}") for i in range(4)]
    for i, s in enumerate(sessions):
        hub.subscribe(s, grant("news"), 0.0)
        hub.subscribe(s, grant("presence-x", f"u{i % 2}"), 0.0)
        hub.signin(s, SignedInUser(f"u{i % 2}", None, ("u0", "u1"), "{}"))
    assert hub.connection_count(APP) == 4
    for s in sessions:
        hub.close(s)
    assert set(hub.sizes(APP).values()) == {0}
    assert hub.channels(APP) == {}
    assert hub.targets(Delivery(Target.CHANNEL, APP.id, "news", b"")) is None
