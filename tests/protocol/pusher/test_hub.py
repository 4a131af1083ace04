"""The sans-I/O Pusher hub with the memory engine, and no sockets at all: handles are
strings, deliveries and webhook events are recorded data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App, Webhook
from protocol.pusher.authorize import SignedInUser, SubscriptionGrant
from protocol.pusher.channels import classify
from protocol.pusher.engine import MemoryEngine
from protocol.pusher.errors import PusherError, SubscriptionError
from protocol.pusher.hub import Delivery, PusherHub, Session, Step, Target, trigger_delivery
from protocol.pusher.messages import ClientEvent
from protocol.pusher.presence import PresenceMember
from protocol.pusher.state import Joined

APP = App(id="1", key="k1", secret="s1", client_events=True, max_presence_members=2)
HOOKED = App(id="2", key="k2", secret="s2", webhooks=(Webhook("http://127.0.0.1:9/"),))


def grant(channel: str, user: str | None = None, **info: Any) -> SubscriptionGrant:
    member = PresenceMember(user, info or None) if user is not None else None
    return SubscriptionGrant(channel, classify(channel), member)


class Node:
    """What the shell does, synchronously, with recorders instead of sockets."""

    def __init__(self) -> None:
        self.hub: PusherHub[str] = PusherHub()
        self.engine = MemoryEngine()
        self.delivered: list[tuple[Delivery, set[str]]] = []
        self.hooks: list[wh.WebhookEvent] = []
        self.engine.bind(self)

    def deliver(self, delivery: Delivery) -> int:
        targets = set(self.hub.targets(delivery) or ())
        if delivery.exclude is not None:
            targets.discard(self.handle_of(delivery.exclude))
        self.delivered.append((delivery, targets))
        return len(targets)

    def emit(self, app: App, event: wh.WebhookEvent) -> None:
        self.hooks.append(event)

    def send_to(self, socket_id: str, payload: bytes) -> bool:
        return False

    def terminate(self, app_id: str, user_id: str) -> int:
        return len(self.hub.user_handles(app_id, user_id))

    def handle_of(self, socket_id: str) -> str:
        return socket_id.partition(".")[2]

    def open(self, name: str, app: App = APP) -> Session[str]:
        self.engine.connect(app, f"1.{name}")
        return self.hub.open(app, name, f"1.{name}", 0.0)

    def subscribe(self, session: Session[str], g: SubscriptionGrant, now: float = 0.0) -> list[Any]:
        step, replies = self.hub.subscribing(session, g)
        if step is Step.DONE:
            return [json.loads(r) for r in replies]
        assert step is Step.JOIN
        out: list[Any] = []

        def joined(result: Joined) -> None:
            effects = self.hub.subscribed(session, g, result)
            out.extend(json.loads(r) for r in effects.replies)
            self.hooks.extend(effects.webhooks)

        self.engine.join(session.app, g.channel, session.socket_id, g.member, now, joined)
        return out

    def unsubscribe(self, session: Session[str], channel: str) -> None:
        leave = self.hub.unsubscribe(session, channel)
        if leave is not None:
            self.engine.leave(session.app, leave[0], session.socket_id, leave[1])

    def signin(self, session: Session[str], user: SignedInUser) -> list[Any]:
        previous = self.hub.signing_in(session, user)
        if previous is not None:
            self.engine.sign_out(session.app, previous.id, session.socket_id, previous.watchlist)
        online = self.engine.sign_in(session.app, user.id, session.socket_id, user.watchlist)
        return [json.loads(r) for r in self.hub.signed_in(session, user, online).replies]

    def close(self, session: Session[str]) -> None:
        closing = self.hub.closing(session)
        for channel, user_id in closing.leaves:
            self.engine.leave(session.app, channel, session.socket_id, user_id)
        if closing.user is not None:
            user = closing.user
            self.engine.sign_out(session.app, user.id, session.socket_id, user.watchlist)
        self.engine.disconnect(session.app, session.socket_id)

    def last(self) -> tuple[Any, set[str]]:
        delivery, targets = self.delivered[-1]
        return json.loads(delivery.payload), targets


@pytest.fixture
def node() -> Node:
    return Node()


def events(replies: list[Any]) -> list[str]:
    return [r["event"] for r in replies]


def test_public_subscribe_publish_and_targets(node: Node) -> None:
    a, b = node.open("a"), node.open("b")
    assert events(node.subscribe(a, grant("news"))) == ["pusher_internal:subscription_succeeded"]
    node.subscribe(b, grant("news"))
    assert not node.delivered and not node.hooks  # public channel, no webhooks configured
    delivery = trigger_delivery(APP, "news", "posted", '{"n":1}', exclude_socket=a.socket_id)
    assert node.engine.trigger(APP, delivery, "posted", '{"n":1}', 1.0) == 1
    payload, targets = node.last()
    assert payload == {"event": "posted", "channel": "news", "data": '{"n":1}'}
    assert targets == {"b"}  # "a" excluded by its socket id
    state = node.engine.channel(APP, "news")
    assert (state.occupied, state.subscription_count, state.user_count) == (True, 2, None)
    # Subscribing again confirms and counts nothing.
    assert events(node.subscribe(a, grant("news"))) == ["pusher_internal:subscription_succeeded"]
    assert node.engine.channel(APP, "news").subscription_count == 2


def test_presence_first_and_last_member(node: Node) -> None:
    a1, a2, b = node.open("a1"), node.open("a2"), node.open("b")
    replies = node.subscribe(a1, grant("presence-r", "alice", name="A"))
    roster = json.loads(replies[0]["data"])["presence"]
    assert roster == {"ids": ["alice"], "hash": {"alice": {"name": "A"}}, "count": 1}
    added, targets = node.last()
    assert added["event"] == "pusher_internal:member_added" and targets == set()  # not the joiner
    seen = len(node.delivered)
    node.subscribe(a2, grant("presence-r", "alice", name="A"))
    assert len(node.delivered) == seen  # alice is already there: no member_added
    node.subscribe(b, grant("presence-r", "bob"))
    assert node.last()[1] == {"a1", "a2"}  # bob's arrival, to the others
    assert node.hub.subscribing(b, grant("presence-r", "bob"))[0] is Step.ROSTER
    assert sorted(node.engine.members(APP, "presence-r")) == ["alice", "bob"]
    state = node.engine.channel(APP, "presence-r")
    assert (state.subscription_count, state.user_count) == (3, 2)
    seen = len(node.delivered)
    node.unsubscribe(a1, "presence-r")
    assert len(node.delivered) == seen  # alice still has a2
    node.unsubscribe(a2, "presence-r")
    removed, targets = node.last()
    assert json.loads(removed["data"]) == {"user_id": "alice"} and targets == {"b"}


def test_presence_full_changes_nothing(node: Node) -> None:
    for name in ("x", "y"):
        node.subscribe(node.open(name), grant("presence-full", name))
    late = node.open("z")
    with pytest.raises(SubscriptionError) as info:
        node.subscribe(late, grant("presence-full", "z"))
    assert info.value.code == 4304
    assert late.channels is None
    assert node.engine.channel(APP, "presence-full").subscription_count == 2
    assert node.hub.targets(Delivery(Target.CHANNEL, APP.id, "presence-full", b"")) == {"x", "y"}


def test_channels_per_connection_bound(node: Node) -> None:
    node.hub.max_channels_per_connection = 2
    a = node.open("a")
    node.subscribe(a, grant("c1"))
    node.subscribe(a, grant("c2"))
    with pytest.raises(SubscriptionError) as info:
        node.subscribe(a, grant("c3"))
    assert info.value.type == "LimitReached"


def test_webhooks_are_transitions(node: Node) -> None:
    a, b = node.open("a", HOOKED), node.open("b", HOOKED)
    node.subscribe(a, grant("presence-w", "u1"))
    assert [e.name for e in node.hooks] == [wh.CHANNEL_OCCUPIED, wh.MEMBER_ADDED]
    node.subscribe(b, grant("presence-w", "u1"))
    assert len(node.hooks) == 2  # occupied already, u1 present already
    node.unsubscribe(a, "presence-w")
    assert len(node.hooks) == 2
    node.close(b)
    assert [e.name for e in node.hooks[2:]] == [wh.MEMBER_REMOVED, wh.CHANNEL_VACATED]


def test_cache_channel_replay_and_miss(node: Node) -> None:
    a = node.open("a", HOOKED)
    miss = node.subscribe(a, grant("cache-p"))
    assert events(miss)[-1] == "pusher:cache_miss"
    assert wh.CACHE_MISS in [e.name for e in node.hooks]
    node.engine.trigger(HOOKED, trigger_delivery(HOOKED, "cache-p", "tick", "1"), "tick", "1", 10.0)
    b = node.open("b", HOOKED)
    hit = node.subscribe(b, grant("cache-p"), now=20.0)
    assert hit[-1] == {"event": "tick", "channel": "cache-p", "data": "1"}
    assert node.engine.cached(HOOKED, "cache-p", 20.0) is not None
    assert node.engine.cached(HOOKED, "cache-p", 10.0 + HOOKED.cache_ttl) is None  # expired


def test_signin_watchlist_and_server_to_user(node: Node) -> None:
    w, b1, b2 = node.open("w"), node.open("b1"), node.open("b2")
    assert events(node.signin(w, SignedInUser("w", None, ("b", "c"), '{"id":"w"}'))) == [
        "pusher:signin_success"  # nobody watched is online yet
    ]
    node.signin(b1, SignedInUser("b", None, (), '{"id":"b"}'))
    online, targets = node.last()
    assert online["event"] == "pusher_internal:watchlist_events" and targets == {"w"}
    seen = len(node.delivered)
    node.signin(b2, SignedInUser("b", None, (), '{"id":"b"}'))
    assert len(node.delivered) == seen  # not the user's first connection
    to_user = trigger_delivery(APP, "#server-to-user-b", "notice", "{}")
    assert to_user.target is Target.USER and node.hub.targets(to_user) == {"b1", "b2"}
    assert sorted(node.hub.user_handles(APP.id, "b")) == ["b1", "b2"]
    late = node.open("late")
    replies = node.signin(late, SignedInUser("late", None, ("b", "c"), '{"id":"late"}'))
    assert json.loads(replies[1]["data"]) == {"events": [{"name": "online", "user_ids": ["b"]}]}
    seen = len(node.delivered)
    node.close(b1)
    assert len(node.delivered) == seen  # b still has b2
    node.close(b2)
    offline, targets = node.last()
    assert json.loads(offline["data"])["events"][0]["name"] == "offline"
    assert targets == {"w", "late"}


def test_client_events_rules_and_rate_limit(node: Node) -> None:
    a, b = node.open("a"), node.open("b")
    event = ClientEvent("client-x", "presence-c", "d")
    with pytest.raises(PusherError):
        node.hub.client_event(a, event, 0.0)  # not subscribed
    node.subscribe(a, grant("presence-c", "ua"))
    node.subscribe(b, grant("presence-c", "ub"))
    relay, hook = node.hub.client_event(a, event, 0.0)
    assert relay.exclude == a.socket_id and json.loads(relay.payload)["user_id"] == "ua"
    assert hook is None  # no webhooks configured
    sent = 1
    with pytest.raises(PusherError) as info:
        for _ in range(APP.max_client_events_per_second):
            node.hub.client_event(a, event, 0.0)
            sent += 1
    assert info.value.code == 4301 and sent == APP.max_client_events_per_second
    node.hub.client_event(a, event, 1.0)  # refilled a second later
    public = node.open("p")
    node.subscribe(public, grant("news"))
    with pytest.raises(PusherError):
        node.hub.client_event(public, ClientEvent("client-x", "news", "d"), 0.0)


def test_close_leaves_no_trace(node: Node) -> None:
    sessions = [node.open(f"s{i}") for i in range(4)]
    for i, s in enumerate(sessions):
        node.subscribe(s, grant("news"))
        node.subscribe(s, grant("presence-x", f"u{i % 2}"))
        node.signin(s, SignedInUser(f"u{i % 2}", None, ("u0", "u1"), "{}"))
    assert node.engine.connection_count(APP) == 4
    assert node.hub.connections() == {APP.id: 4}
    for s in sessions:
        node.close(s)
    assert node.hub.connections() == {APP.id: 0}
    assert set(node.hub.sizes(APP).values()) == {0}
    assert set(node.engine.sizes(APP).values()) == {0}
    assert node.engine.channels(APP) == {}
    assert node.hub.targets(Delivery(Target.CHANNEL, APP.id, "news", b"")) is None
