"""Webhooks end to end: a real aiohttp receiver on an ephemeral port checks every body's
signature with the app secret; WebSocket clients make the events happen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.pusher.webhooks import WebhookDispatcher, as_event
from protocol.pusher.apps import App, StaticAppStore, Webhook
from protocol.pusher.webhooks import channel_occupied
from tests.gwtest import metric_samples, sample
from tests.pusher_api_helpers import (
    Receiver,
    Running,
    Socket,
    call,
    pusher_gateway,
    receiver_for,
    request,
)

# Short timings instead of the production 3 s / 1 s: the behaviour is the same.
FAST = {"delay": 0.3, "batch_window": 0.02, "retry_base": 0.1, "retry_max_delay": 0.2}


def run_app(run: Running) -> App:
    app = run.engine.store.by_id(BASE.id)
    assert app is not None
    return app


BASE = App(id="7", key="hook-key", secret="hook-secret", client_events=True)


@contextlib.asynccontextmanager
async def hooked(
    event_types: frozenset[str] = frozenset(), **options: Any
) -> AsyncIterator[tuple[Running, Receiver, WebhookDispatcher]]:
    """A receiver, a gateway whose app posts to it, and the gateway's dispatcher."""
    async with receiver_for(BASE) as receiver:
        app = App(
            id=BASE.id,
            key=BASE.key,
            secret=BASE.secret,
            client_events=True,
            webhooks=(Webhook(receiver.url, event_types),),
        )
        async with pusher_gateway(app, **options) as run:
            dispatcher = run.engine.webhooks
            assert isinstance(dispatcher, WebhookDispatcher)
            dispatcher.configure(**FAST)
            yield run, receiver, dispatcher


def test_no_dispatcher_without_webhooks(arun):
    async def main():
        async with pusher_gateway(BASE) as run:
            assert run.engine.webhooks is None

    arun(main())


def test_occupied_then_vacated_after_the_delay(arun):
    async def main():
        async with hooked() as (run, receiver, dispatcher):
            a, b = await Socket.open(run, BASE), await Socket.open(run, BASE)
            await a.subscribe("room", app=BASE)
            await b.subscribe("room", app=BASE)  # not a second occupied
            await receiver.until(lambda: receiver.names() == ["channel_occupied"])
            _, body = receiver.attempts[0]
            assert abs(body["time_ms"] / 1000 - time.time()) < 5
            assert body["events"] == [{"name": "channel_occupied", "channel": "room"}]

            await a.close()
            await b.close()
            left = time.monotonic()
            await receiver.until(lambda: "channel_vacated" in receiver.names())
            waited = receiver.attempts[-1][0] - left
            assert FAST["delay"] - 0.05 <= waited < FAST["delay"] + 1.0
            assert receiver.events[-1] == {"name": "channel_vacated", "channel": "room"}
            assert receiver.bad_signatures == 0
            assert dispatcher.stats()["delivered"] == 2
            assert len(receiver.peers) == 1  # the pooled connection was kept alive
            metrics = await request(run.port, "GET", "/metrics")
            got = metric_samples(metrics.body.decode())
            assert sample(got, "uvgate_pusher_webhook_delivered_total", worker="0") == 2

    arun(main())


def test_quick_rejoin_cancels_vacated(arun):
    async def main():
        async with hooked() as (run, receiver, dispatcher):
            sock = await Socket.open(run, BASE)
            await sock.subscribe("room", app=BASE)
            await receiver.until(lambda: receiver.names() == ["channel_occupied"])
            # A page reload: leave and come back well within the delay.
            await sock.send("pusher:unsubscribe", {"channel": "room"})
            await sock.subscribe("room", app=BASE)
            await asyncio.sleep(FAST["delay"] * 2)
            assert receiver.names() == ["channel_occupied"]
            assert dispatcher.stats()["cancelled"] == 1
            await sock.close()

    arun(main())


def test_member_added_and_removed(arun):
    async def main():
        async with hooked() as (run, receiver, _):
            a1, a2, b = [await Socket.open(run, BASE) for _ in range(3)]
            await a1.subscribe("presence-room", "alice", app=BASE)
            await a2.subscribe("presence-room", "alice", app=BASE)  # same user: no event
            await b.subscribe("presence-room", "bob", app=BASE)
            added = [("member_added", "alice"), ("member_added", "bob")]
            await receiver.until(
                lambda: [(e["name"], e.get("user_id")) for e in receiver.events][1:] == added
            )
            assert receiver.names()[0] == "channel_occupied"
            await b.close()
            await a1.close()  # alice still has a2
            await receiver.until(lambda: "member_removed" in receiver.names())
            await asyncio.sleep(0.1)
            removed = [e for e in receiver.events if e["name"] == "member_removed"]
            assert removed == [
                {"name": "member_removed", "channel": "presence-room", "user_id": "bob"}
            ]
            await a2.close()
            await receiver.until(
                lambda: (
                    "channel_vacated" in receiver.names()
                    and receiver.names().count("member_removed") == 2
                )
            )
            assert [e.get("user_id") for e in receiver.events if e["name"] == "member_removed"] == [
                "bob",
                "alice",
            ]

    arun(main())


def test_client_event_and_cache_miss(arun):
    async def main():
        async with hooked(frozenset({"client_event", "cache_miss"})) as (run, receiver, _):
            a, b = await Socket.open(run, BASE), await Socket.open(run, BASE)
            await a.subscribe("private-chat", app=BASE)
            await b.subscribe("private-chat", app=BASE)
            await a.ws.send(
                json.dumps({"event": "client-typing", "channel": "private-chat", "data": {}})
            )
            assert (await b.next_event())["event"] == "client-typing"
            await a.subscribe("presence-p", "alice", app=BASE)
            await a.ws.send(
                json.dumps({"event": "client-hi", "channel": "presence-p", "data": {"x": 1}})
            )
            await a.subscribe("cache-prices", app=BASE)
            assert (await a.next_event())["event"] == "pusher:cache_miss"
            await receiver.until(lambda: len(receiver.events) == 3)
            typing, hi, miss = receiver.events
            assert typing["name"] == "client_event"
            assert (typing["channel"], typing["event"], typing["socket_id"]) == (
                "private-chat",
                "client-typing",
                a.socket_id,
            )
            assert "user_id" not in typing
            assert (hi["event"], hi["user_id"], json.loads(hi["data"])) == (
                "client-hi",
                "alice",
                {"x": 1},
            )
            assert miss == {"name": "cache_miss", "channel": "cache-prices"}  # filtered types
            await a.close()
            await b.close()

    arun(main())


def test_retry_after_500_then_success(arun):
    async def main():
        async with hooked() as (run, receiver, dispatcher):
            receiver.statuses.extend([500, 502])
            sock = await Socket.open(run, BASE)
            await sock.subscribe("room", app=BASE)
            await receiver.until(lambda: receiver.names() == ["channel_occupied"])
            times = [t for t, _ in receiver.attempts]
            assert len(times) == 3  # 500, 502, then 200
            assert times[1] - times[0] >= FAST["retry_base"] * 0.8
            # Every attempt carries the same events, re-signed with a fresh time.
            assert len({json.dumps(b["events"]) for _, b in receiver.attempts}) == 1
            stats = dispatcher.stats()
            assert (stats["failures"], stats["delivered"], stats["given_up"]) == (2, 1, 0)
            await sock.close()

    arun(main())


def test_dead_endpoint_is_retried_then_given_up(arun):
    async def main():
        async with hooked() as (run, receiver, dispatcher):
            dispatcher.configure(retry_window=0.5)
            receiver.statuses.extend([500] * 100)
            sock = await Socket.open(run, BASE)
            await sock.subscribe("room", app=BASE)
            await receiver.until(lambda: dispatcher.stats()["given_up"] == 1)
            assert 3 <= len(receiver.attempts) <= 6
            assert receiver.events == []
            await sock.close()

    arun(main())


def test_hanging_endpoint_does_not_slow_websocket_traffic(arun):
    async def main():
        async with hooked() as (run, receiver, dispatcher):
            receiver.hang = True
            client = await Socket.open(run, BASE)
            listener = await Socket.open(run, BASE)
            await listener.subscribe("private-flow", app=BASE)
            await client.subscribe("private-flow", app=BASE)
            # A flood of webhook events, all stuck behind a hanging endpoint.
            for i in range(300):
                await client.send("pusher:subscribe", {"channel": f"c{i}"})
            await receiver.until(lambda: receiver.hanging >= 1)
            # Client events and API publishes go through at once while deliveries hang.
            latencies = []
            for i in range(20):
                start = time.perf_counter()
                await client.ws.send(
                    json.dumps({"event": "client-x", "channel": "private-flow", "data": {"i": i}})
                )
                msg = await listener.next_event(2)
                assert (msg["event"], json.loads(msg["data"])) == ("client-x", {"i": i})
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.11)  # under 10 client events/s per socket
            for i in range(100):
                start = time.perf_counter()
                body = {"name": "api", "data": str(i), "channel": "private-flow"}
                assert (
                    await call(run.port, run_app(run), "POST", "/apps/7/events", body)
                ).status == 200
                msg = await listener.next_event(2)
                assert (msg["event"], msg["data"]) == ("api", str(i))
                latencies.append(time.perf_counter() - start)
            # Blocking on a webhook would cost seconds (the 5 s timeout); a busy CI host
            # can still pause the loop for a moment, hence the loose tail bounds.
            assert statistics.median(latencies) < 0.02
            assert statistics.quantiles(latencies, n=20)[-1] < 0.1  # p95
            assert max(latencies) < 1.0
            stats = dispatcher.stats()
            # Bounded: at most max_per_host requests in flight to the one URL.
            assert 1 <= stats["in_flight"] <= dispatcher.max_per_host
            assert receiver.hanging <= dispatcher.max_per_host
            # Pings answered promptly too.
            start = time.perf_counter()
            await listener.send("pusher:ping", {})
            assert (await listener.next_event())["event"] == "pusher:pong"
            assert time.perf_counter() - start < 0.1
            await client.close()
            await listener.close()

    arun(main(), timeout=90)


def test_bounded_queue_drops_and_logs_once(arun, caplog):
    async def main():
        async with hooked() as (run, receiver, dispatcher):
            receiver.hang = True
            dispatcher.configure(max_pending=20)
            sock = await Socket.open(run, BASE)
            for i in range(200):
                await sock.send("pusher:subscribe", {"channel": f"c{i}"})
            await receiver.until(lambda: dispatcher.dropped() > 0)
            await asyncio.sleep(0.3)
            assert dispatcher.stats()["pending"] <= 20  # what waits in the scheduler
            await sock.close()

    with caplog.at_level(logging.WARNING, logger="uvgate.pusher.webhooks"):
        arun(main(), timeout=60)
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1


def test_shutdown_flushes_delayed_events(arun):
    async def main():
        async with receiver_for(BASE) as receiver:
            app = App(
                id=BASE.id,
                key=BASE.key,
                secret=BASE.secret,
                webhooks=(Webhook(receiver.url),),
            )
            async with pusher_gateway(app) as run:
                run.engine.webhooks.configure(delay=30.0, batch_window=0.02)
                sock = await Socket.open(run, BASE)
                await sock.subscribe("room", app=BASE)
                await receiver.until(lambda: receiver.names() == ["channel_occupied"])
                started = time.monotonic()
            # Shutdown closed the socket (vacated waits 30 s) and flushed it at once.
            assert receiver.names() == ["channel_occupied", "channel_vacated"]
            assert time.monotonic() - started < 3.0

    arun(main())


def test_shutdown_flushes_more_deliveries_than_slots(arun):
    async def main():
        async with receiver_for(BASE) as receiver:
            app = App(
                id=BASE.id, key=BASE.key, secret=BASE.secret, webhooks=(Webhook(receiver.url),)
            )
            async with pusher_gateway(app) as run:
                dispatcher = run.engine.webhooks
                # One event per delivery, one slot: the five vacated events wait (30 s)
                # until shutdown releases them, then queue behind one another.
                dispatcher.configure(delay=30.0, batch_window=30.0, max_batch_events=1)
                dispatcher.max_per_host = 1
                sock = await Socket.open(run, BASE)
                for i in range(5):
                    await sock.subscribe(f"room{i}", app=BASE)
                await receiver.until(lambda: len(receiver.events) == 5)
            names = sorted(receiver.names())
            assert names == ["channel_occupied"] * 5 + ["channel_vacated"] * 5
            assert len(receiver.attempts) == 10

    arun(main())


def test_shutdown_gives_up_on_a_hanging_endpoint_within_about_a_second(arun):
    async def main():
        async with receiver_for(BASE) as receiver:
            receiver.hang = True
            app = App(
                id=BASE.id, key=BASE.key, secret=BASE.secret, webhooks=(Webhook(receiver.url),)
            )
            gw_cm = pusher_gateway(app)
            run = await gw_cm.__aenter__()
            run.engine.webhooks.configure(batch_window=0.01)
            sock = await Socket.open(run, BASE)
            await sock.subscribe("room", app=BASE)
            await receiver.until(lambda: receiver.hanging == 1)
            start = time.monotonic()
            await gw_cm.__aexit__(None, None, None)
            # grace for the socket (closes at once) + ~1 s flush budget
            assert time.monotonic() - start < 2.5

    arun(main())


def test_emit_never_raises_and_accepts_dicts(arun):
    async def main():
        store = StaticAppStore([])
        dispatcher = WebhookDispatcher(store, **FAST)
        app = App(id="1", key="k", secret="s", webhooks=(Webhook("http://127.0.0.1:9/x"),))
        dispatcher.emit(app, {"name": "channel_occupied", "channel": "a"})
        dispatcher.emit(app, {"nonsense": True})  # a bug upstream: counted, not raised
        dispatcher.emit(App(id="2", key="k2", secret="s"), channel_occupied("b"))  # no hooks
        stats = dispatcher.stats()
        assert (stats["emitted"], stats["emit_errors"], stats["pending"]) == (1, 1, 1)
        await dispatcher.stop()  # never started: nothing to flush, no error

    arun(main())
    assert as_event({"name": "member_added", "channel": "p", "user_id": "1"}).user_id == "1"


@pytest.mark.parametrize("bad", [{"max_concurrency": 0}, {"delay_typo": 1}])
def test_bad_options_fail_at_construction(bad):
    with pytest.raises((ValueError, TypeError)):
        WebhookDispatcher(StaticAppStore([]), **bad)
