"""The engine contract: the same cases against the memory engine and the Redis engine.

Every case runs twice (``cluster_of``): on memory engines sharing a ``MemoryBus`` and on
Redis engines sharing a real ``redis-server``. Cases with two nodes check the
cluster-wide semantics: delivery everywhere, one order per channel, presence counted per
user across nodes, first/last decided once, queries equal from every node.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from protocol.pusher.apps import App, Webhook
from protocol.pusher.errors import SubscriptionError
from tests.gateway.cluster.harness import answer, settle

APP = App(id="1", key="k1", secret="s1", client_events=True, max_presence_members=3)
OTHER = App(id="2", key="k2", secret="s2")
HOOKED = App(id="3", key="k3", secret="s3", webhooks=(Webhook("http://127.0.0.1:9/"),))


def data_of(message: dict[str, Any]) -> Any:
    return json.loads(message["data"])


def test_publish_reaches_every_node_but_the_excluded_socket(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("a1", APP)
            await b.open("b1", APP)
            await b.open("b2", APP)
            for node, name in ((a, "a1"), (b, "b1"), (b, "b2")):
                await node.subscribe(name, "news")
                assert node.events(name) == ["pusher_internal:subscription_succeeded"]
            await a.trigger(APP, "news", "posted", "1", exclude=b.socket("b2"))
            await settle(lambda: len(a.inbox["a1"]) == 2 and len(b.inbox["b1"]) == 2)
            assert a.inbox["a1"][1] == {"event": "posted", "channel": "news", "data": "1"}
            assert b.inbox["b1"][1]["data"] == "1"
            await asyncio.sleep(0.05)
            assert b.events("b2") == ["pusher_internal:subscription_succeeded"]  # excluded
            await b.trigger(OTHER, "news", "posted", "2")  # another app's channel
            await asyncio.sleep(0.05)
            assert len(a.inbox["a1"]) == 2

    arun(main())


def test_one_order_per_channel_across_nodes(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("a1", APP)
            await b.open("b1", APP)
            await a.subscribe("a1", "orders")
            await b.subscribe("b1", "orders")
            # Each trigger completes before the next starts, through alternating nodes.
            for i in range(40):
                await (a if i % 2 else b).trigger(APP, "orders", "n", str(i))
            await settle(lambda: len(a.inbox["a1"]) == 41 and len(b.inbox["b1"]) == 41)
            expected = [str(i) for i in range(40)]
            assert [m["data"] for m in a.inbox["a1"][1:]] == expected
            assert [m["data"] for m in b.inbox["b1"][1:]] == expected

    arun(main())


def test_presence_is_counted_per_user_across_nodes(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            for node, name in ((a, "watch"), (a, "alice-a"), (b, "alice-b"), (b, "bob")):
                await node.open(name, APP)
            await a.subscribe("watch", "presence-room", "w", None)
            await a.subscribe("alice-a", "presence-room", "alice", {"n": 1})
            await settle(lambda: "pusher_internal:member_added" in a.events("watch"))
            await b.subscribe("alice-b", "presence-room", "alice", {"n": 1})
            roster = data_of(b.inbox["alice-b"][0])["presence"]
            assert roster["count"] == 2 and sorted(roster["ids"]) == ["alice", "w"]
            await b.subscribe("bob", "presence-room", "bob", None)
            await settle(lambda: a.events("watch").count("pusher_internal:member_added") == 2)
            added = [
                data_of(m)["user_id"] for m in a.inbox["watch"] if m["event"].endswith("added")
            ]
            assert added == ["alice", "bob"]  # alice once, though on two nodes
            for node in (a, b):
                state = await answer(node.engine.channel(APP, "presence-room"))
                assert (state.occupied, state.subscription_count, state.user_count) == (True, 4, 3)
                users = await answer(node.engine.presence_users(APP, "presence-room"))
                assert sorted(users) == ["alice", "bob", "w"]
            await a.close("alice-a")
            await asyncio.sleep(0.05)
            assert "pusher_internal:member_removed" not in a.events("watch")  # alice-b stays
            await b.close("alice-b")
            await settle(lambda: "pusher_internal:member_removed" in a.events("watch"))
            removed = [m for m in a.inbox["watch"] if m["event"].endswith("removed")]
            assert [data_of(m)["user_id"] for m in removed] == ["alice"]
            state = await answer(b.engine.channel(APP, "presence-room"))
            assert (state.subscription_count, state.user_count) == (2, 2)

    arun(main())


def test_concurrent_joins_and_leaves_of_one_user_decide_once(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("watch", APP)
            await a.subscribe("watch", "presence-race", "w", None)
            rounds = 15
            for i in range(rounds):
                await a.open(f"x{i}", APP)
                await b.open(f"y{i}", APP)
                await asyncio.gather(
                    a.subscribe(f"x{i}", "presence-race", "carol", None),
                    b.subscribe(f"y{i}", "presence-race", "carol", None),
                )
                await asyncio.gather(
                    a.unsubscribe(f"x{i}", "presence-race"),
                    b.unsubscribe(f"y{i}", "presence-race"),
                )
            # The predicate reads the inbox afresh: a list taken once would never change.
            await settle(
                lambda: a.events("watch").count("pusher_internal:member_removed") >= rounds
            )
            await asyncio.sleep(0.05)
            member = [e for e in a.events("watch") if e.startswith("pusher_internal:member")]
            assert (
                member
                == ["pusher_internal:member_added", "pusher_internal:member_removed"] * rounds
            )

    arun(main())


def test_presence_limit_holds_cluster_wide(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            for i, node in enumerate((a, b, a)):
                await node.open(f"u{i}", APP)
                await node.subscribe(f"u{i}", "presence-small", f"user{i}", None)
            await b.open("late", APP)
            with pytest.raises(SubscriptionError) as info:
                await b.subscribe("late", "presence-small", "user9", None)
            assert info.value.code == 4304
            state = await answer(a.engine.channel(APP, "presence-small"))
            assert (state.subscription_count, state.user_count) == (3, 3)  # nothing changed
            await b.subscribe("late", "presence-small", "user0", None)  # a present user: fine

    arun(main())


def test_connection_counts_are_cluster_wide(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            assert await a.open("a1", APP) == 1
            assert await b.open("b1", APP) == 2  # the quota sees both nodes
            assert await answer(a.engine.connection_count(APP)) == 2
            await b.close("b1")
            assert await answer(a.engine.connection_count(APP)) == 1
            assert await answer(b.engine.connection_count(OTHER)) == 0

    arun(main())


def test_cache_channels_from_any_node(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await b.open("early", APP)
            await b.subscribe("early", "cache-price")
            assert b.events("early")[-1] == "pusher:cache_miss"
            await a.trigger(APP, "cache-price", "tick", "42")
            await settle(lambda: len(b.inbox["early"]) == 3)
            await b.open("late", APP)
            await b.subscribe("late", "cache-price")
            assert b.inbox["late"][-1] == {"event": "tick", "channel": "cache-price", "data": "42"}
            entry = await answer(a.engine.cached(APP, "cache-price", 0.0))
            assert entry is not None and entry.data == "42"
            await asyncio.sleep(0.05)
            assert len(b.inbox["late"]) == 2  # the cached event once, not again live

    arun(main())


def test_client_events_reach_other_nodes_never_the_sender(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("a1", APP)
            await b.open("b1", APP)
            await a.subscribe("a1", "presence-chat", "ann", None)
            await b.subscribe("b1", "presence-chat", "ben", None)
            await a.whisper("a1", "presence-chat", "client-typing", '{"t":1}')
            await settle(lambda: "client-typing" in b.events("b1"))
            whisper = b.inbox["b1"][-1]
            assert whisper["user_id"] == "ann" and whisper["data"] == '{"t":1}'
            await asyncio.sleep(0.05)
            assert "client-typing" not in a.events("a1")

    arun(main())


def test_users_watchlists_and_terminate_across_nodes(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("watcher", APP)
            await a.signin("watcher", "w", ("dan",))
            await b.open("dan1", APP)
            await b.signin("dan1", "dan")
            await settle(lambda: "pusher_internal:watchlist_events" in a.events("watcher"))
            online = data_of(a.inbox["watcher"][-1])
            assert online == {"events": [{"name": "online", "user_ids": ["dan"]}]}
            await a.open("dan2", APP)
            await a.signin("dan2", "dan")  # not the first: nobody is told
            await b.open("late", APP)
            await b.signin("late", "l", ("dan", "nobody"))
            initial = data_of(b.inbox["late"][-1])
            assert initial == {"events": [{"name": "online", "user_ids": ["dan"]}]}
            # #server-to-user-dan reaches both of dan's connections, on both nodes.
            await a.trigger(APP, "#server-to-user-dan", "notice", "hi")
            await settle(lambda: "notice" in b.events("dan1") and "notice" in a.events("dan2"))
            await answer(a.engine.terminate(APP, "dan"))
            await settle(lambda: a.kicked == ["dan2"] and b.kicked == ["dan1"])
            await b.close("dan1")
            await a.close("dan2")
            await settle(lambda: a.events("watcher").count("pusher_internal:watchlist_events") == 2)
            offline = data_of(a.inbox["watcher"][-1])
            assert offline == {"events": [{"name": "offline", "user_ids": ["dan"]}]}

    arun(main())


def test_queries_are_the_same_from_every_node(arun: Any, cluster_of: Any) -> None:
    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("a1", APP)
            await b.open("b1", APP)
            await a.subscribe("a1", "presence-x", "u1", None)
            await b.subscribe("b1", "presence-x", "u1", None)
            await a.subscribe("a1", "public-1")
            await b.subscribe("b1", "public-2")
            answers = [await answer(node.engine.channels(APP, "")) for node in (a, b)]
            assert answers[0] == answers[1]
            assert sorted(answers[0]) == ["presence-x", "public-1", "public-2"]
            assert answers[0]["presence-x"].user_count == 1  # one user on two nodes
            assert answers[0]["presence-x"].subscription_count == 2
            only = await answer(b.engine.channels(APP, "presence-"))
            assert list(only) == ["presence-x"]
            for node in (a, b):
                vacant = await answer(node.engine.channel(APP, "never"))
                assert not vacant.occupied and vacant.subscription_count == 0

    arun(main())


def test_transitions_fire_webhook_events_once(
    arun: Any, cluster_of: Any, redis_server: Any
) -> None:
    """occupied / member_added once for the cluster, whichever node saw the transition."""

    async def main() -> None:
        async with cluster_of(2) as (a, b):
            await a.open("a1", HOOKED)
            await b.open("b1", HOOKED)
            await a.subscribe("a1", "presence-h", "u1", None)
            await b.subscribe("b1", "presence-h", "u1", None)  # same user, other node
            names = await _hook_names(a, b, redis_server)
            assert sorted(names) == ["channel_occupied", "member_added"]

    arun(main())


async def _hook_names(a: Any, b: Any, redis_server: Any) -> list[str]:
    """What the engines decided to tell the webhooks: the memory engine hands the events
    to its node; the Redis engine writes them to the cluster's outbox stream."""
    engine = a.engine
    if hasattr(engine, "bus"):
        return [event.name for _, event in a.hooks + b.hooks]
    raw = await engine.link.redis.xrange(f"{engine.link.prefix}:wh:outbox")
    return [json.loads(fields[b"e"])["name"] for _, fields in raw]
