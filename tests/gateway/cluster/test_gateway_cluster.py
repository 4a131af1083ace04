"""Gateways as nodes of one cluster, end to end: real sockets, a real redis-server.

Two gateways in the test process, each its own node (``--node-id 1`` and ``2``), sharing
the session's redis-server under a prefix of their own. Clients connect to one or the
other; the HTTP API is called on either.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from gateway import Config, Gateway
from gateway.cluster.node import NodeConflict
from protocol.pusher.apps import App
from tests.gateway.cluster.nodes import APP, nodes, ready
from tests.gwtest import SECRET, auth_message, raw_request, status_of, upgrade_request
from tests.pusher_api_helpers import call, request
from tests.pusher_ws_helpers import Client, app_table, decoded, settle
from tests.redis_server import RedisServer


def test_pusher_across_two_nodes(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with nodes(redis_server.url) as (one, two):
            a, b = await Client.open(one), await Client.open(two)
            assert a.socket_id.startswith("100.") and b.socket_id.startswith("200.")
            await a.join("presence-room", "alice")
            joined = await b.join("presence-room", "bob")
            assert sorted(joined["ids"]) == ["alice", "bob"]
            added = decoded(await a.expect("pusher_internal:member_added", "presence-room"))
            assert added == {"user_id": "bob"}
            # The API of either node delivers to both, excluding a socket of the other.
            sent = await call(two.port, APP, "POST", "/apps/1/events", {"name": "ev", "data": "1", "channels": ["presence-room"]})  # fmt: skip
            assert sent.status == 200
            for c in (a, b):
                assert (await c.expect("ev", "presence-room"))["data"] == "1"
            body = {
                "name": "ev",
                "data": "2",
                "channels": ["presence-room"],
                "socket_id": a.socket_id,
            }
            assert (await call(two.port, APP, "POST", "/apps/1/events", body)).status == 200
            assert (await b.expect("ev"))["data"] == "2"
            await a.silent()
            # A whisper crosses nodes, never back to its sender.
            await b.send("client-typing", {"t": 1}, channel="presence-room")
            whisper = await a.expect("client-typing", "presence-room")
            assert whisper["user_id"] == "bob"
            await b.silent()
            # Every node answers the queries the same, from the shared state.
            for gw in (one, two):
                info = await call(gw.port, APP, "GET", "/apps/1/channels/presence-room", params=[("info", "user_count,subscription_count")])  # fmt: skip
                assert info.json() == {"occupied": True, "user_count": 2, "subscription_count": 2}
                users = await call(gw.port, APP, "GET", "/apps/1/channels/presence-room/users")
                assert sorted(u["id"] for u in users.json()["users"]) == ["alice", "bob"]
            # terminate_connections through node one reaches bob's socket on node two.
            await b.signin("bob")
            assert (await call(one.port, APP, "POST", "/apps/1/users/bob/terminate_connections", {})).status == 200  # fmt: skip
            assert (await b.error_then_close(4009))["message"] == "You got disconnected by the app."
            removed = decoded(await a.expect("pusher_internal:member_removed", "presence-room"))
            assert removed == {"user_id": "bob"}
            await a.aclose()

    arun(main())


def test_native_registry_across_nodes(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with (
            nodes(redis_server.url, app="chat", pusher=False) as (one, two),
            connect(f"ws://127.0.0.1:{one.port}/ws") as x,
            connect(f"ws://127.0.0.1:{two.port}/ws") as y,
        ):
            await x.send(auth_message("xavier"))
            await y.send(auth_message("yvonne"))
            x_id = json.loads(await x.recv())["id"]
            y_id = json.loads(await y.recv())["id"]
            for ws in (x, y):
                await ws.send(json.dumps({"type": "join", "group": "room"}))
                assert json.loads(await ws.recv())["type"] == "joined"
            # The chat app's group broadcast reaches the member on the other node.
            await x.send(json.dumps({"type": "publish", "group": "room", "data": "hi"}))
            for ws in (x, y):
                message = json.loads(await ws.recv())
                assert (message["from"], message["data"]) == ("xavier", "hi")
            # By id: to the node the id names. By user: every node.
            assert one.registry.send(y_id, {"to": "y"})
            assert json.loads(await y.recv()) == {"to": "y"}
            assert two.registry.send_to_user("xavier", {"to": "x"}) == 0  # not on two
            assert json.loads(await x.recv()) == {"to": "x"}
            assert not one.registry.send("not-an-id", {"nobody": True})
            assert one.registry.close(y_id, 4000, "moved")
            await asyncio.wait_for(y.wait_closed(), 3)
            assert y.close_code == 4000
            two.registry.close_user("xavier", 4001, "bye")
            await asyncio.wait_for(x.wait_closed(), 3)
            assert x.close_code == 4001 and x_id

    arun(main())


def test_failure_limit_holds_across_nodes(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with nodes(redis_server.url, auth_fail_limit=3, pusher=False) as (one, two):
            for gw in (one, two, one):
                async with connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
                    await ws.send(json.dumps({"type": "auth", "token": "bad"}))
                    await ws.recv()
            # Two failures on node one, one on node two: the third crossed the limit.
            await settle(lambda: two.limiter.retry_after("127.0.0.1") > 0, 3.0)
            for gw in (one, two):
                response = await raw_request(gw, upgrade_request())
                assert status_of(response) == 429

    arun(main())


def test_a_second_live_node_with_the_same_id_is_refused(
    arun: Any, redis_server: RedisServer
) -> None:
    async def main() -> None:
        async with nodes(redis_server.url, 1, prefix="same-id") as (one,):
            clone = Gateway(Config(host="127.0.0.1", port=0, secret=SECRET, node_id=1, redis_url=redis_server.url, redis_prefix="same-id"))  # fmt: skip
            with pytest.raises(NodeConflict) as info:
                await clone.start()
            assert "node id 1" in str(info.value) and "--node-id" in str(info.value)
            await clone.shutdown(grace=0.1)
            # Without --node-id a free one is found; another prefix is another cluster.
            auto = Gateway(Config(host="127.0.0.1", port=0, secret=SECRET, redis_url=redis_server.url, redis_prefix="same-id"))  # fmt: skip
            await auto.start()
            assert auto.cluster is not None and auto.cluster.node_id != 1
            await auto.shutdown(grace=0.1)
            assert one.cluster is not None and one.cluster.ready

    arun(main())


def test_two_prefixes_never_see_each_other(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with nodes(redis_server.url, 1, prefix="blue") as (blue,), nodes(redis_server.url, 1, prefix="green") as (green,):  # fmt: skip
            b, g = await Client.open(blue), await Client.open(green)
            await b.subscribe("news")
            await g.subscribe("news")
            body = {"name": "ev", "data": "blue only", "channels": ["news"]}
            assert (await call(blue.port, APP, "POST", "/apps/1/events", body)).status == 200
            assert (await b.expect("ev"))["data"] == "blue only"
            await g.silent()
            info = await call(green.port, APP, "GET", "/apps/1/channels/news", params=[("info", "subscription_count")])  # fmt: skip
            assert info.json() == {"occupied": True, "subscription_count": 1}

    arun(main())


def test_ready_follows_the_cluster(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with nodes(redis_server.url, 1) as (one,):
            assert await ready(one) == 200
            metrics = (await request(one.port, "GET", "/metrics")).body.decode()
            assert 'uvgate_cluster_ready{worker="0"} 1' in metrics

    arun(main())


def test_cache_quota_and_repeat_subscribe_across_nodes(
    arun: Any, redis_server: RedisServer
) -> None:
    small = App(id="1", key="key-1", secret="secret-1", client_events=True, max_connections=2)

    async def main() -> None:
        async with nodes(redis_server.url, apps=[app_table(small)]) as (one, two):
            a, b = await Client.open(one), await Client.open(two)
            # The app's quota counts both nodes: a third connection is refused with 4004.
            third = await connect(f"ws://127.0.0.1:{one.port}/app/key-1?protocol=7")
            error = json.loads(await third.recv())
            assert error["event"] == "pusher:error" and decoded(error)["code"] == 4004
            await third.wait_closed()
            # Cache channels: the API of one node keeps the event for the other.
            body = {"name": "tick", "data": "7", "channels": ["cache-c"]}
            assert (await call(one.port, APP, "POST", "/apps/1/events", body)).status == 200
            info = await call(two.port, APP, "GET", "/apps/1/channels/cache-c", params=[("info", "cache")])  # fmt: skip
            cache = info.json()["cache"]
            assert cache["data"] == "7" and 0 < cache["ttl"] <= 1800
            await b.subscribe("cache-c")
            assert (await b.expect("tick", "cache-c"))["data"] == "7"
            # Subscribing again to a presence channel answers with the cluster's roster.
            await a.join("presence-r", "ann")
            await b.join("presence-r", "ben")
            await a.expect("pusher_internal:member_added")
            channel_data = json.dumps({"user_id": "ann", "user_info": None})
            again = await a.subscribe("presence-r", channel_data=channel_data)
            assert sorted(decoded(again)["presence"]["ids"]) == ["ann", "ben"]
            count = await call(two.port, APP, "GET", "/apps/1/channels", params=[("filter_by_prefix", "presence-"), ("info", "user_count")])  # fmt: skip
            assert count.json() == {"channels": {"presence-r": {"user_count": 2}}}
            await a.aclose()
            await b.aclose()

    arun(main())


def test_one_trigger_is_one_publish_whatever_the_subscribers(
    arun: Any, redis_server: RedisServer
) -> None:
    """A trigger costs Redis one PUBLISH per channel, whatever the number of subscribers
    or nodes: every node delivers the one copy to its own subscribers."""

    async def main() -> None:
        async with nodes(redis_server.url, 3) as gateways:
            clients = [await Client.open(gateways[i % 3]) for i in range(12)]
            for c in clients:
                await c.subscribe("wide")
                await c.subscribe("other")
            redis = gateways[0].cluster.link.redis  # type: ignore[union-attr]

            async def publishes() -> int:
                stats = await redis.info("commandstats")
                return int(stats.get("cmdstat_publish", {}).get("calls", 0))

            before = await publishes()
            for n in range(10):
                body = {"name": "ev", "data": str(n), "channels": ["wide"]}
                assert (await call(gateways[n % 3].port, APP, "POST", "/apps/1/events", body)).status == 200  # fmt: skip
            two = {"name": "ev", "data": "both", "channels": ["wide", "other"]}
            assert (await call(gateways[0].port, APP, "POST", "/apps/1/events", two)).status == 200
            for c in clients:
                for _ in range(12):
                    await c.expect("ev")
            assert await publishes() - before == 10 + 2
            for c in clients:
                await c.aclose()

    arun(main())
