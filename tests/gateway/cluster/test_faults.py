"""Faults, each with a real redis-server: Redis down and back, a partitioned node, a node
killed with SIGKILL, and webhooks that must fire once for the cluster, delayed, cancelled
by a rejoin on another node, and taken over from a dead node."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import Config, Gateway
from protocol.pusher.apps import App, Webhook
from tests.conftest import run_checked
from tests.gateway.cluster.nodes import APP, nodes, ready
from tests.gwtest import SECRET
from tests.pusher_api_helpers import call, receiver_for, request
from tests.pusher_ws_helpers import Client, app_table, decoded
from tests.redis_server import RedisServer
from tests.served import ROOT, free_port
from tests.tcpproxy import TcpProxy

_runs = itertools.count(1)  # a prefix per run: the asyncio and uvloop runs share the Redis


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds it took ``check`` to hold (fails after ``timeout``)."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not after {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def trigger(gw: Gateway, channel: str, data: str) -> int:
    body = {"name": "ev", "data": data, "channels": [channel]}
    return (await call(gw.port, APP, "POST", "/apps/1/events", body)).status


def test_redis_down_then_back(arun: Any) -> None:
    server = RedisServer()
    server.start()

    async def main() -> None:
        async with nodes(server.url) as (one, two):
            a, a2, b = await Client.open(one), await Client.open(one), await Client.open(two)
            await a.join("presence-r", "alice")
            await a2.join("presence-r", "ann")
            await b.join("presence-r", "bob")
            for _ in range(2):
                await a.expect("pusher_internal:member_added")
            await a2.expect("pusher_internal:member_added")

            server.kill()
            for gw in (one, two):
                await until(lambda gw=gw: _is(ready(gw), 503), 5, "not ready while Redis is down")
            # No half delivery: the API refuses, saying why.
            refused = await call(one.port, APP, "POST", "/apps/1/events", {"name": "ev", "data": "x", "channels": ["presence-r"]})  # fmt: skip
            assert refused.status == 503 and b"unavailable" in refused.body
            # Clients on one node still talk to each other; the loss is counted.
            await a.send("client-x", {"n": 1}, channel="presence-r")
            assert (await a2.expect("client-x"))["user_id"] == "alice"
            metrics = (await request(one.port, "GET", "/metrics")).body.decode()
            assert 'uvgate_cluster_messages_dropped_total{worker="0"} 1' in metrics
            for c in (a, a2, b):  # nobody was disconnected
                await c.send("pusher:ping")
                await c.expect("pusher:pong")

            server.start()  # an empty Redis (no persistence): everything is registered again
            back = time.monotonic()
            for gw in (one, two):
                await until(lambda gw=gw: _is(ready(gw), 200), 5, "ready again")
            assert await trigger(two, "presence-r", "after") == 200
            for c in (a, a2, b):
                # (Redis came back empty: the members registered again were announced
                # again first, which pusher-js takes as a no-op.)
                assert (await next_event(c, "ev", 5))["data"] == "after"
            assert time.monotonic() - back < 5
            for gw in (one, two):
                info = await call(gw.port, APP, "GET", "/apps/1/channels/presence-r", params=[("info", "user_count,subscription_count")])  # fmt: skip
                assert info.json() == {"occupied": True, "user_count": 3, "subscription_count": 3}
            for c in (a, a2, b):
                await c.aclose()

    try:
        arun(main())
    finally:
        server.stop()


async def _is(answer: Awaitable[int], want: int) -> bool:
    try:
        return await answer == want
    except OSError:
        return False


def test_a_partitioned_node_comes_back(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        proxy = TcpProxy("127.0.0.1", redis_server.port)
        await proxy.start()
        common = {"host": "127.0.0.1", "port": 0, "secret": SECRET, "apps": [app_table(APP)], "redis_prefix": f"partition{next(_runs)}"}  # fmt: skip
        one = Gateway(Config(node_id=1, redis_url=proxy.url(), **common))
        two = Gateway(Config(node_id=2, redis_url=redis_server.url, **common))
        await one.start()
        await two.start()
        try:
            a, b = await Client.open(one), await Client.open(two)
            await a.subscribe("news")
            await b.subscribe("news")
            proxy.cut()
            await until(lambda: _is(ready(one), 503), 5, "the cut-off node not ready")
            assert await ready(two) == 200
            assert await trigger(two, "news", "during") == 200
            assert (await b.expect("ev"))["data"] == "during"
            proxy.restore()
            took = await until(lambda: _is(ready(one), 200), 5, "the node back")
            assert await trigger(two, "news", "after") == 200
            for c in (a, b):
                assert (await c.expect("ev"))["data"] == "after"
            assert took < 5
            await a.aclose()
            await b.aclose()
        finally:
            await one.shutdown(grace=0.5)
            await two.shutdown(grace=0.5)
            await proxy.stop()

    arun(main())


@contextlib.contextmanager
def serve_process(redis_url: str, prefix: str, node_id: int, apps: list[Any]) -> Any:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UVGATE_")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--secret", SECRET, "--node-id", str(node_id),
            "--redis", redis_url, "--redis-prefix", prefix, "--apps", json.dumps(apps),
            "--log-level", "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def next_event(client: Client, event: str, timeout: float) -> dict[str, Any]:
    """The next ``event`` the client gets within ``timeout`` s (pings etc. skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await client.recv(max(0.01, deadline - time.monotonic()))
        if message["event"] == event:
            return message


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port


def test_a_killed_node_is_reaped_within_15_seconds(redis_server: RedisServer) -> None:
    """(Once, on uvloop: it waits for the reaper, and the loop of this process is not what
    is tested.)"""

    async def main() -> None:
        async with receiver_for(APP) as receiver:
            hooked = App(id="1", key="key-1", secret="secret-1", webhooks=(Webhook(receiver.url),))
            tables = [app_table(hooked)]
            prefix = f"reap{next(_runs)}"
            async with nodes(redis_server.url, 1, prefix=prefix, apps=tables) as (one,):
                assert one.cluster is not None and one.pusher is not None
                one.cluster.engine.delay_ms = 300
                assert one.pusher.dispatcher is not None
                one.pusher.dispatcher.configure(batch_window=0.02)
                with serve_process(redis_server.url, prefix, 2, tables) as (proc, port):
                    await until(lambda: _is(ready(_Port(port)), 200), 20, "node 2 up")
                    watcher = await Client.open(one)
                    await watcher.join("presence-d", "w")
                    doomed = await Client.open(_Port(port))  # type: ignore[arg-type]
                    await doomed.join("presence-d", "x")
                    await doomed.join("presence-solo", "x")
                    assert decoded(await watcher.expect("pusher_internal:member_added")) == {
                        "user_id": "x"
                    }
                    await receiver.until(lambda: receiver.names("presence-solo") == ["channel_occupied", "member_added"])  # fmt: skip
                    await asyncio.sleep(0.3)  # (acknowledged by node 2, or delivered twice)
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = time.monotonic()
                    removed = await next_event(watcher, "pusher_internal:member_removed", 15)
                    assert decoded(removed) == {"user_id": "x"}
                    assert time.monotonic() - killed < 15
                    info = await call(one.port, APP, "GET", "/apps/1/channels/presence-d", params=[("info", "user_count,subscription_count")])  # fmt: skip
                    assert info.json() == {
                        "occupied": True,
                        "user_count": 1,
                        "subscription_count": 1,
                    }
                    await receiver.until(lambda: len(receiver.names("presence-solo")) == 4, 5)
                    await asyncio.sleep(0.5)
                    assert sorted(receiver.names("presence-solo")) == sorted(
                        ["channel_occupied", "member_added", "member_removed", "channel_vacated"]
                    )  # each once
                    await watcher.aclose()

    run_checked(main(), "uvloop", timeout=90)


def test_webhooks_fire_once_for_the_cluster(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with receiver_for(APP) as receiver:
            hooked = App(id="1", key="key-1", secret="secret-1", webhooks=(Webhook(receiver.url),))
            prefix = f"hooks{next(_runs)}"
            async with nodes(redis_server.url, prefix=prefix, apps=[app_table(hooked)]) as (
                one,
                two,
            ):
                for gw in (one, two):
                    assert gw.cluster is not None and gw.pusher is not None and gw.pusher.dispatcher
                    gw.cluster.engine.delay_ms = 400
                    gw.pusher.dispatcher.configure(batch_window=0.02)
                a, b = await Client.open(one), await Client.open(two)
                await a.join("presence-w", "u1")
                await b.join("presence-w", "u1")  # the same user on the other node
                await receiver.until(lambda: len(receiver.names("presence-w")) == 2)
                await a.aclose()
                await asyncio.sleep(0.6)
                assert len(receiver.names("presence-w")) == 2  # u1 is still on node two
                await b.aclose()
                await receiver.until(lambda: len(receiver.names("presence-w")) == 4)
                assert sorted(receiver.names("presence-w")) == sorted(
                    ["channel_occupied", "member_added", "member_removed", "channel_vacated"]
                )
                # A page reload that lands on the other node: leave on one, rejoin on two
                # within the delay. Neither vacated/removed nor occupied/added goes out.
                c = await Client.open(one)
                await c.join("presence-q", "u2")
                await receiver.until(lambda: len(receiver.names("presence-q")) == 2)
                await c.aclose()
                d = await Client.open(two)
                await d.join("presence-q", "u2")
                await asyncio.sleep(1.0)
                assert receiver.names("presence-q") == ["channel_occupied", "member_added"]
                await d.aclose()

    arun(main())


def test_a_dead_nodes_webhooks_are_taken_over(arun: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with receiver_for(APP) as receiver:
            hooked = App(id="1", key="key-1", secret="secret-1", webhooks=(Webhook(receiver.url),))
            prefix = f"takeover{next(_runs)}"
            stream = f"{prefix}:wh:outbox"
            async with nodes(redis_server.url, 1, prefix=prefix, apps=[app_table(hooked)]) as (
                one,
            ):
                assert one.cluster is not None and one.cluster.outbox is not None
                redis = one.cluster.link.redis
                # Node 900 took this event from the outbox, then died before delivering it
                # (one transaction: the live node's consumer cannot take it first).
                event = json.dumps({"name": "channel_occupied", "channel": "orphan"})
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.xadd(stream, {"a": "1", "e": event})
                    pipe.xreadgroup("webhooks", "900", {stream: ">"}, count=10)
                    _, taken = await pipe.execute()
                assert taken, "node 900 holds the event"
                await asyncio.sleep(0.5)
                assert receiver.names("orphan") == []  # pending on a dead node: not delivered
                await one.cluster.outbox.take_over("900")
                await receiver.until(lambda: receiver.names("orphan") == ["channel_occupied"])
                await asyncio.sleep(1.2)  # acknowledged: never delivered again
                assert receiver.names("orphan") == ["channel_occupied"]
                assert await redis.xlen(stream) == 0

    arun(main())


def test_a_node_reaped_while_cut_off_registers_again(arun: Any, redis_server: RedisServer) -> None:
    """A partition longer than the lease: the others reap the node (member_removed); when it
    comes back its heartbeat finds the lease gone, it claims it again and registers what
    its connections hold (member_added), without disconnecting anyone."""

    async def main() -> None:
        async with nodes(redis_server.url, prefix=f"lease{next(_runs)}") as (one, two):
            assert one.cluster is not None and two.cluster is not None
            watcher = await Client.open(two)
            await watcher.join("presence-l", "w")
            cut_off = await Client.open(one)
            await cut_off.join("presence-l", "lost")
            await cut_off.signin("lost")
            await watcher.expect("pusher_internal:member_added")
            # What the cluster sees of a node silent past its lease: no claim, an old
            # heartbeat. The reaper of node two removes its state.
            redis, prefix, key = two.cluster.link.redis, two.cluster.link.prefix, one.cluster.key
            await redis.delete(f"{prefix}:node:{key}")
            await redis.zadd(f"{prefix}:nodes", {key: 0})
            assert await two.cluster.reap() == 1
            removed = await next_event(watcher, "pusher_internal:member_removed", 5)
            assert decoded(removed) == {"user_id": "lost"}
            # Node one's next heartbeat (every 2 s) finds its lease gone: claimed again,
            # everything registered again, announced to the others.
            added = await next_event(watcher, "pusher_internal:member_added", 8)
            assert decoded(added) == {"user_id": "lost"}
            assert one.cluster.lease_losses == 1
            info = await call(two.port, APP, "GET", "/apps/1/channels/presence-l", params=[("info", "user_count,subscription_count")])  # fmt: skip
            assert info.json() == {"occupied": True, "user_count": 2, "subscription_count": 2}
            await cut_off.send("pusher:ping")
            # Never disconnected. (Here, not cut off for real, it heard its own removal.)
            await next_event(cut_off, "pusher:pong", 5)
            await cut_off.aclose()
            await watcher.aclose()

    arun(main())


def test_a_stuck_link_is_found_and_made_again(arun: Any, redis_server: RedisServer) -> None:
    """Centrifugo #1189: after a failover the PUB/SUB connection stayed open but carried
    nothing while health checks were green. Here the link to Redis goes silent without an
    error: the PING probe finds it, the node says it is not ready, and once the link works
    again the node reconnects and delivers."""

    async def main() -> None:
        proxy = TcpProxy("127.0.0.1", redis_server.port)
        await proxy.start()
        common = {"host": "127.0.0.1", "port": 0, "secret": SECRET, "apps": [app_table(APP)], "redis_prefix": f"stuck{next(_runs)}"}  # fmt: skip
        one = Gateway(Config(node_id=1, redis_url=proxy.url(), **common))
        two = Gateway(Config(node_id=2, redis_url=redis_server.url, **common))
        await one.start()
        await two.start()
        try:
            a = await Client.open(one)
            await a.subscribe("news")
            proxy.freeze()
            await until(lambda: _is(ready(one), 503), 8, "a silent link noticed")
            assert one.cluster is not None
            subscriber = one.cluster.subscriber

            async def probed() -> bool:
                return not subscriber.up

            await until(probed, 8, "the PUB/SUB probe finds no PONG")
            proxy.restore()
            await until(lambda: _is(ready(one), 200), 8, "the link made again")
            assert await trigger(two, "news", "flowing") == 200
            assert (await a.expect("ev"))["data"] == "flowing"
            assert one.cluster is not None and one.cluster.subscriber.reconnects >= 1
            await a.aclose()
        finally:
            await one.shutdown(grace=0.5)
            await two.shutdown(grace=0.5)
            await proxy.stop()

    arun(main())


def test_soak_three_nodes_every_event_once_in_order(arun: Any, redis_server: RedisServer) -> None:
    """soketi #428: random non-delivery with three nodes, found only by sequence checks.
    Triggers numbered 0..N-1 through the three nodes in turn, each completing before the
    next; every subscriber, whatever its node, gets exactly 0..N-1 in order."""
    triggers = 150

    async def main() -> None:
        async with nodes(redis_server.url, 3, prefix=f"soak{next(_runs)}") as gateways:
            clients = [await Client.open(gateways[i % 3]) for i in range(9)]
            for c in clients:
                await c.subscribe("soak")
            for n in range(triggers):
                assert await trigger(gateways[n % 3], "soak", str(n)) == 200
            for c in clients:
                got = [int((await next_event(c, "ev", 5))["data"]) for _ in range(triggers)]
                assert got == list(range(triggers))
                await c.silent(0.05)
            for c in clients:
                await c.aclose()

    arun(main())
