"""Pusher protocol v7 over real sockets: a gateway on an ephemeral port, ``websockets``
clients speaking JSON frames, every test under asyncio and uvloop (``arun``).

Signatures come from ``protocol.pusher.signatures`` and, where marked, from the official
``pusher`` PyPI library (what a Python backend's auth endpoint would return).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pusher
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.config import Config
from gateway.pusher import PusherService, build_store
from gateway.server import Gateway
from gateway.verifiers.base import AuthFailed, Identity, token_of
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import DEV_APP, App
from protocol.pusher.hub import Session
from protocol.pusher.signatures import sign_channel, sign_user
from tests.gwtest import SECRET, auth_message, raw_request, status_of, upgrade_request
from tests.pusher_ws_helpers import APP, QUERY, Client, app_table, clients, decoded, settle

QUIET = App(id="2", key="key-2", secret="secret-2")  # client events off
LENIENT = App(id="3", key="key-3", secret="secret-3", auth_failure="error", client_events=True)
OFF = App(id="4", key="key-4", secret="secret-4", enabled=False)
TIMED = App(id="5", key="key-5", secret="secret-5", require_auth_within=0.5)
SIGNIN_FIRST = App(id="6", key="key-6", secret="secret-6", first_message="signin")
SMALL = App(id="7", key="key-7", secret="secret-7", max_connections=1, max_presence_members=2)
HOOKED = App(
    id="8", key="key-8", secret="secret-8", client_events=True,
    webhooks=(wh.Webhook("http://127.0.0.1:9/hook"),),
)  # fmt: skip
APPS = (APP, QUIET, LENIENT, OFF, TIMED, SIGNIN_FIRST, SMALL, HOOKED)


@contextlib.asynccontextmanager
async def pusher_gateway(
    *apps: App,
    before_start: Callable[[Gateway], None] | None = None,
    verifier: Any = None,
    **options: Any,
) -> AsyncIterator[Gateway]:
    config: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "secret": SECRET, "node_id": 7}
    config.update(options)
    config["apps"] = [app_table(a) for a in apps or APPS]
    gw = Gateway(Config(**config), verifier=verifier)
    if before_start is not None:
        before_start(gw)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.shutdown(grace=1.0)


def engine_of(gw: Gateway) -> PusherService:
    assert gw.pusher is not None
    return gw.pusher


class Sink:
    """A webhook sink that records what the engine emits."""

    def __init__(self) -> None:
        self.events: list[tuple[str, wh.WebhookEvent]] = []

    def emit(self, app: App, event: wh.WebhookEvent) -> None:
        self.events.append((app.id, event))

    def names(self) -> list[str]:
        return [e.name for _, e in self.events]


# ====================================================================== connecting


def test_connection_established(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 1) as (c,):
            data = decoded(c.established)
            assert re.fullmatch(r"\d+\.\d+", c.socket_id)
            assert c.socket_id.startswith("700.")  # node 7, worker 0: the owner is readable
            assert data["activity_timeout"] == 30  # the app's
            assert isinstance(c.established["data"], str)  # double encoded
            assert c.socket_id in gw.registry
            assert engine_of(gw).connection_count(APP) == 1
            await c.send("pusher:ping")
            await c.expect("pusher:pong")

    arun(main())


@pytest.mark.parametrize(
    ("key", "query", "code"),
    [
        ("nope", QUERY, 4001),
        ("key-1/extra", QUERY, 4005),
        (OFF.key, QUERY, 4003),
        (APP.key, "client=js", 4008),
        (APP.key, "protocol=", 4008),
        (APP.key, "protocol=abc", 4006),
        (APP.key, "protocol=6", 4007),
    ],
)
def test_connect_refusals_error_then_close(arun: Any, key: str, query: str, code: int) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            async with connect(f"ws://127.0.0.1:{gw.port}/app/{key}?{query}") as ws:
                err = json.loads(await asyncio.wait_for(ws.recv(), 2))
                assert err["event"] == "pusher:error"
                assert decoded(err)["code"] == code
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 2)
                assert ws.close_code == code
            await settle(lambda: not gw.registry and not gw.timers.pending)

    arun(main())


def test_over_quota_4004(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 1, SMALL):
            async with connect(f"ws://127.0.0.1:{gw.port}/app/{SMALL.key}?{QUERY}") as ws:
                err = json.loads(await asyncio.wait_for(ws.recv(), 2))
                assert decoded(err) == {"message": "Over connection quota", "code": 4004}
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 2)
                assert ws.close_code == 4004
            assert engine_of(gw).connection_count(SMALL) == 1

    arun(main())


def test_invalid_frames_are_non_fatal(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 1) as (c,):
            await c.ws.send("not json")
            assert decoded(await c.expect("pusher:error"))["code"] == 4300
            await c.ws.send(json.dumps({"event": "pusher_internal:member_added", "data": {}}))
            assert decoded(await c.expect("pusher:error"))["code"] == 4300
            await c.send("pusher:subscribe", {"channel": "bad name!"})
            err = await c.expect("pusher:subscription_error", "bad name!")
            assert decoded(err)["status"] == 400
            await c.send("pusher:subscribe", {"channel": "#server-to-user-1"})
            await c.expect("pusher:subscription_error", "#server-to-user-1")  # not signed in
            # ...that one is an auth failure: the default policy closes.
            assert await c.error_then_close(4009)

    arun(main())


# ====================================================================== channels


def test_public_subscribe_publish_unsubscribe(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 3) as (a, b, c):
            engine = engine_of(gw)
            for x in (a, b):
                assert decoded(await x.subscribe("news")) == {}
            assert engine.publish(APP, "news", "posted", '{"n":1}') == 2
            for x in (a, b):
                msg = await x.expect("posted", "news")
                assert msg["data"] == '{"n":1}'  # relayed verbatim
            await c.silent()
            assert engine.publish(APP, "news", "posted", "x", exclude_socket=a.socket_id) == 1
            assert (await b.expect("posted"))["data"] == "x"
            await a.silent()
            assert engine.channel_state(APP, "news") == engine.channels(APP)["news"]
            assert engine.channel_state(APP, "news").subscription_count == 2
            await a.subscribe("news")  # again: confirmed, counted once
            assert engine.channel_state(APP, "news").subscription_count == 2
            await a.send("pusher:unsubscribe", {"channel": "never-joined"})  # no-op
            await a.send("pusher:unsubscribe", {"channel": "news"})
            await a.silent(0.1)  # no reply to an unsubscribe
            assert engine.publish(APP, "news", "posted", "y") == 1
            await b.expect("posted")
            await a.silent()
            assert engine.publish(QUIET, "news", "posted", "y") == 0  # apps are separate
            assert engine.channels(APP, prefix="new").keys() == {"news"}
            assert engine.channels(APP, prefix="private-") == {}

    arun(main())


def test_private_and_encrypted_with_official_library(arun: Any) -> None:
    master = base64.b64encode(b"k" * 32).decode()
    lib = pusher.Pusher(
        app_id=APP.id, key=APP.key, secret=APP.secret, encryption_master_key_base64=master
    )

    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 1) as (c,):
            for channel in ("private-orders", "private-encrypted-x", "private-cache-y"):
                body = lib.authenticate(channel=channel, socket_id=c.socket_id)
                assert ("shared_secret" in body) == ("encrypted" in channel)
                await c.send("pusher:subscribe", {"channel": channel, "auth": body["auth"]})
                await c.expect("pusher_internal:subscription_succeeded", channel)
            await c.expect("pusher:cache_miss", "private-cache-y")
            body = lib.authenticate(
                channel="presence-room",
                socket_id=c.socket_id,
                custom_data={"user_id": "9", "user_info": {"name": "Nine"}},
            )
            await c.send("pusher:subscribe", {"channel": "presence-room", **body})
            ok = await c.expect("pusher_internal:subscription_succeeded", "presence-room")
            assert decoded(ok)["presence"] == {
                "ids": ["9"], "hash": {"9": {"name": "Nine"}}, "count": 1,
            }  # fmt: skip
            signed = lib.authenticate_user(c.socket_id, {"id": "9"})
            await c.send("pusher:signin", signed)
            assert decoded(await c.expect("pusher:signin_success")) == {
                "user_data": signed["user_data"]
            }
            # Ciphertext is relayed as the publisher sent it.
            cipher = '{"nonce":"bm9uY2U=","ciphertext":"Y2lwaGVy"}'
            engine_of(gw).publish(APP, "private-encrypted-x", "secret", cipher)
            assert (await c.expect("secret"))["data"] == cipher

    arun(main())


def test_auth_failure_closes_4009_logged_counted(arun: Any, caplog: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 2) as (a, b):
            bad = sign_channel(APP.key, "wrong-secret", a.socket_id, "private-x")
            await a.send("pusher:subscribe", {"channel": "private-x", "auth": bad})
            err = decoded(await a.expect("pusher:subscription_error", "private-x"))
            assert err == {"type": "AuthError", "error": "Invalid signature", "status": 401}
            assert (await a.error_then_close(4009))["message"] == "Invalid signature"
            # Another socket's signature replayed on this socket: refused too.
            good_for_a = sign_channel(APP.key, APP.secret, a.socket_id, "private-x")
            await b.send("pusher:subscribe", {"channel": "private-x", "auth": good_for_a})
            await b.expect("pusher:subscription_error", "private-x")
            await b.error_then_close(4009)
            assert gw.stats.auth_failed == 2
            assert engine_of(gw).connection_count(APP) == 0

    with caplog.at_level(logging.WARNING, logger="uvgate.auth"):
        arun(main())
    lines = [r for r in caplog.records if r.name == "uvgate.auth"]
    assert len(lines) == 2  # one line per failure
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["app"] == APP.id and fields["channel"] == "private-x"
    assert fields["code"] == 4009 and fields["ip"] == "127.0.0.1"
    assert fields["reason"] == "Invalid signature" and re.fullmatch(r"\d+\.\d+", fields["conn"])


def test_auth_failure_error_mode_keeps_socket(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 1, LENIENT) as (c,):
            await c.send("pusher:subscribe", {"channel": "private-x"})  # no auth at all
            err = decoded(await c.expect("pusher:subscription_error", "private-x"))
            assert err["type"] == "AuthError"
            await c.send("pusher:ping")
            await c.expect("pusher:pong")  # still open, no pusher:error
            await c.subscribe("private-x", LENIENT)
            assert gw.stats.auth_failed == 1

    arun(main())


def test_error_mode_closes_once_the_ip_passes_the_limit(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway(auth_fail_limit=3) as gw, clients(gw, 1, LENIENT) as (c,):
            for _ in range(2):
                await c.send("pusher:subscribe", {"channel": "private-x", "auth": "key-3:00"})
                await c.expect("pusher:subscription_error")
            await c.send("pusher:subscribe", {"channel": "private-x", "auth": "key-3:00"})
            await c.expect("pusher:subscription_error")
            await c.error_then_close(4009)  # the third failure crossed auth_fail_limit

    arun(main())


def test_channels_per_connection_are_bounded(arun: Any) -> None:
    def small(gw: Gateway) -> None:
        engine_of(gw).max_channels_per_connection = 3

    async def main() -> None:
        async with pusher_gateway(before_start=small) as gw, clients(gw, 1) as (c,):
            for i in range(3):
                await c.subscribe(f"c{i}")
            await c.send("pusher:subscribe", {"channel": "c3"})
            err = decoded(await c.expect("pusher:subscription_error", "c3"))
            assert err["type"] == "LimitReached"
            await c.send("pusher:unsubscribe", {"channel": "c0"})
            await c.subscribe("c3")

    arun(main())


def test_auth_failures_rate_limit_the_ip_429(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway(auth_fail_limit=2) as gw:
            for _ in range(2):
                c = await Client.open(gw)
                await c.send("pusher:subscribe", {"channel": "private-x", "auth": "key-1:00"})
                await c.expect("pusher:subscription_error")
                await c.error_then_close(4009)
            raw = await raw_request(gw, upgrade_request(f"/app/{APP.key}?{QUERY}"))
            assert status_of(raw) == 429
            assert b"Retry-After" in raw

    arun(main())


def test_presence_dedupes_users_across_sockets(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 3) as (a1, a2, b):
            engine = engine_of(gw)
            room = "presence-room"
            first = await a1.join(room, "alice", name="Alice")
            assert first == {"ids": ["alice"], "hash": {"alice": {"name": "Alice"}}, "count": 1}
            second = await a2.join(room, "alice", name="Alice")
            assert second["count"] == 1  # same user, second tab
            await a1.silent()  # no member_added for a user already present
            joined = await b.join(room, "bob")
            assert joined["count"] == 2 and set(joined["ids"]) == {"alice", "bob"}
            for x in (a1, a2):
                added = decoded(await x.expect("pusher_internal:member_added", room))
                assert added == {"user_id": "bob"}
            await b.silent()  # the joiner does not hear about itself
            state = engine.channel_state(APP, room)
            assert (state.subscription_count, state.user_count) == (3, 2)
            assert sorted(engine.presence_users(APP, room)) == ["alice", "bob"]
            await a1.aclose()
            await b.silent()  # alice still has a socket there
            await a2.send("pusher:unsubscribe", {"channel": room})
            removed = decoded(await b.expect("pusher_internal:member_removed", room))
            assert removed == {"user_id": "alice"}
            assert engine.presence_users(APP, room) == ["bob"]

    arun(main())


def test_presence_full_and_bad_channel_data(arun: Any) -> None:
    async def main() -> None:
        small = dataclasses.replace(SMALL, id="9", key="key-9", max_connections=None)
        async with pusher_gateway(small, APP) as gw, clients(gw, 3, small) as (a, b, c):
            await a.join("presence-r", "1", small)
            await b.join("presence-r", "2", small)
            channel_data = json.dumps({"user_id": "3"})
            await c.send(
                "pusher:subscribe",
                {
                    "channel": "presence-r",
                    "channel_data": channel_data,
                    "auth": sign_channel(
                        small.key, small.secret, c.socket_id, "presence-r", channel_data
                    ),
                },
            )
            err = decoded(await c.expect("pusher:subscription_error", "presence-r"))
            assert err["type"] == "LimitReached"
            # Signed but not a valid member: an invalid request, not an auth failure.
            bad = '{"no_user_id":1}'
            auth = sign_channel(small.key, small.secret, c.socket_id, "presence-s", bad)
            await c.send(
                "pusher:subscribe", {"channel": "presence-s", "channel_data": bad, "auth": auth}
            )
            err = decoded(await c.expect("pusher:subscription_error", "presence-s"))
            assert err["type"] == "InvalidChannelData"
            await c.send("pusher:ping")
            await c.expect("pusher:pong")
            assert gw.stats.auth_failed == 0

    arun(main())


# ====================================================================== client events


def test_client_events_rules(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 3) as (a, b, c):
            await a.subscribe("private-chat")
            await b.subscribe("private-chat")
            await a.send("client-typing", {"who": "a"}, channel="private-chat")
            msg = await b.expect("client-typing", "private-chat")
            assert json.loads(msg["data"]) == {"who": "a"} and "user_id" not in msg
            await a.silent()  # never echoed to the sender
            await c.send("client-typing", {}, channel="private-chat")  # not subscribed
            assert decoded(await c.expect("pusher:error"))["code"] == 4301
            await c.subscribe("public")
            await c.send("client-typing", {}, channel="public")  # public channel
            assert decoded(await c.expect("pusher:error"))["code"] == 4301
            await c.send("hello", {}, channel="public")  # no client- prefix
            assert decoded(await c.expect("pusher:error"))["code"] == 4301
            # Presence: user_id added.
            await a.join("presence-p", "alice")
            await b.join("presence-p", "bob")
            await a.expect("pusher_internal:member_added")
            await b.send("client-wave", "hi", channel="presence-p")
            msg = await a.expect("client-wave", "presence-p")
            assert msg["user_id"] == "bob" and msg["data"] == "hi"

    arun(main())


def test_client_events_disabled_and_rate_limit_4301(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            async with clients(gw, 1, QUIET) as (q,):
                await q.subscribe("private-x", QUIET)
                await q.send("client-x", {}, channel="private-x")
                err = decoded(await q.expect("pusher:error"))
                assert err["code"] == 4301 and "not enabled" in err["message"]
            async with clients(gw, 2) as (a, b):
                await a.subscribe("private-r")
                await b.subscribe("private-r")
                for i in range(12):
                    await a.send("client-burst", {"i": i}, channel="private-r")
                got = [await b.expect("client-burst") for _ in range(10)]
                assert [json.loads(m["data"])["i"] for m in got] == list(range(10))
                for _ in range(2):
                    err = decoded(await a.expect("pusher:error"))
                    assert err == {"message": "Client event rate limit reached", "code": 4301}
                await b.silent()
                await a.send("pusher:ping")
                await a.expect("pusher:pong")  # non-fatal

    arun(main())


def test_webhooks_emitted(arun: Any) -> None:
    sink = Sink()

    def wire(gw: Gateway) -> None:
        engine_of(gw).webhooks = sink

    async def main() -> None:
        async with pusher_gateway(before_start=wire) as gw:
            async with clients(gw, 2, HOOKED) as (a, b):
                await a.join("presence-w", "u1", HOOKED)
                await b.join("presence-w", "u2", HOOKED)
                await a.expect("pusher_internal:member_added")
                await b.send("client-x", "d", channel="presence-w")
                await a.expect("client-x")
                await a.subscribe("cache-c", HOOKED)
                await a.expect("pusher:cache_miss", "cache-c")
                async with clients(gw, 1) as (other,):  # an app with no webhooks
                    await other.subscribe("cache-c")
                    await other.expect("pusher:cache_miss")
            await settle(lambda: "channel_vacated" in sink.names())
        assert all(app_id == HOOKED.id for app_id, _ in sink.events)
        names = sink.names()
        assert names[:5] == [
            "channel_occupied", "member_added", "member_added", "client_event", "channel_occupied"
        ]  # fmt: skip
        assert "cache_miss" in names
        client = next(e for _, e in sink.events if e.name == "client_event")
        assert (client.event, client.data, client.user_id) == ("client-x", "d", "u2")
        assert names.count("member_removed") == 2 and names.count("channel_vacated") == 2

    arun(main())


# ====================================================================== cache channels


def test_cache_replay_and_miss(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 2) as (a, b):
            engine = engine_of(gw)
            await a.subscribe("cache-prices")
            await a.expect("pusher:cache_miss", "cache-prices")
            # Stored even with no subscribers.
            assert engine.publish(APP, "cache-empty", "tick", '{"p":1}') == 0
            assert engine.cached(APP, "cache-empty") is not None
            engine.publish(APP, "cache-prices", "tick", '{"p":2}')
            await a.expect("tick")
            await b.subscribe("cache-prices")
            replay = await b.expect("tick", "cache-prices")
            assert replay["data"] == '{"p":2}'
            await b.subscribe("cache-empty")
            assert (await b.expect("tick", "cache-empty"))["data"] == '{"p":1}'
            # Client events are never cached.
            await a.subscribe("private-cache-z")
            await a.expect("pusher:cache_miss")
            await b.subscribe("private-cache-z")
            await b.expect("pusher:cache_miss")
            await a.send("client-x", "1", channel="private-cache-z")
            await b.expect("client-x")
            assert engine.cached(APP, "private-cache-z") is None
            assert engine.cached(QUIET, "cache-prices") is None

    arun(main())


# ====================================================================== users


def test_signin_and_server_to_user(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 3) as (a1, a2, b):
            engine = engine_of(gw)
            ok = await a1.signin("alice", user_info={"name": "A"})
            assert json.loads(decoded(ok)["user_data"])["id"] == "alice"
            await a2.signin("alice")
            await b.subscribe("news")
            for x in (a1, a2):
                await x.subscribe("#server-to-user-alice")  # what pusher-js does next
            sent = engine.publish(APP, "#server-to-user-alice", "notice", '{"n":1}')
            assert sent == 2
            for x in (a1, a2):
                assert (await x.expect("notice", "#server-to-user-alice"))["data"] == '{"n":1}'
            await b.silent()
            assert "#server-to-user-alice" not in engine.channels(APP)
            # Somebody else's channel: an auth failure, closed.
            await b.signin("bob")
            await b.send("pusher:subscribe", {"channel": "#server-to-user-alice"})
            await b.expect("pusher:subscription_error", "#server-to-user-alice")
            await b.error_then_close(4009)

    arun(main())


def test_bad_signin_closes_4009_in_every_mode(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            for app in (APP, LENIENT):
                c = await Client.open(gw, app)
                user_data = '{"id":"mallory"}'
                auth = sign_user(app.key, "guess", c.socket_id, user_data)
                await c.send("pusher:signin", {"auth": auth, "user_data": user_data})
                err = await c.error_then_close(4009)
                assert err["message"] == "Invalid signin signature"
            c = await Client.open(gw)
            user_data = json.dumps({"id": "w", "watchlist": [str(i) for i in range(101)]})
            auth = sign_user(APP.key, APP.secret, c.socket_id, user_data)
            await c.send("pusher:signin", {"auth": auth, "user_data": user_data})
            assert decoded(await c.expect("pusher:error"))["code"] == 4302  # not fatal
            await c.signin("w")
            await c.aclose()
            assert gw.stats.auth_failed == 2

    arun(main())


def test_watchlist_online_offline(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            watcher = await Client.open(gw)
            await watcher.signin("w", watchlist=["b", "c"])
            await watcher.silent()  # nobody online yet: no event
            b1, b2 = await Client.open(gw), await Client.open(gw)
            await b1.signin("b")
            online = decoded(await watcher.expect("pusher_internal:watchlist_events"))
            assert online == {"events": [{"name": "online", "user_ids": ["b"]}]}
            await b2.signin("b")
            await watcher.silent()  # not the user's first connection
            late = await Client.open(gw)
            await late.signin("late", watchlist=["b", "c"])
            initial = decoded(await late.expect("pusher_internal:watchlist_events"))
            assert initial == {"events": [{"name": "online", "user_ids": ["b"]}]}
            await b1.aclose()
            await watcher.silent()  # b still has a connection
            await b2.aclose()
            for x in (watcher, late):
                offline = decoded(await x.expect("pusher_internal:watchlist_events"))
                assert offline == {"events": [{"name": "offline", "user_ids": ["b"]}]}
            await late.aclose()
            await watcher.aclose()
            engine = engine_of(gw)
            await settle(lambda: engine.connection_count(APP) == 0)
            sizes = engine.sizes(APP)
            assert sizes["local_users"] == sizes["local_watchers"] == sizes["online"] == 0

    arun(main())


def test_terminate_user(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw, clients(gw, 3) as (a1, a2, b):
            engine = engine_of(gw)
            await a1.signin("alice")
            await a2.signin("alice")
            await b.signin("bob")
            assert engine.terminate_user(APP, "alice") == 2
            for x in (a1, a2):
                err = await x.error_then_close(4009)
                assert err["message"] == "You got disconnected by the app."
            await b.send("pusher:ping")
            await b.expect("pusher:pong")
            assert engine.terminate_user(APP, "nobody") == 0
            assert engine.terminate_user(QUIET, "bob") == 0  # per app
            assert gw.stats.auth_failed == 0  # a kick is not an auth failure

    arun(main())


# ====================================================================== strict policies


def test_require_auth_within(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            idle, public, private, signed = [await Client.open(gw, TIMED) for _ in range(4)]
            await public.subscribe("news", TIMED)  # a public channel does not count
            await private.subscribe("private-x", TIMED)
            await signed.signin("s", TIMED)
            for x in (idle, public):
                err = await x.error_then_close(4009)
                assert err["message"] == "Authentication timeout"
            await asyncio.sleep(0.3)
            for x in (private, signed):
                await x.send("pusher:ping")
                await x.expect("pusher:pong")
                await x.aclose()
            assert gw.stats.auth_timeouts == 2

    arun(main())


def test_first_message_signin(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            rude = await Client.open(gw, SIGNIN_FIRST)
            await rude.send("pusher:subscribe", {"channel": "news"})
            err = await rude.error_then_close(4009)
            assert err["message"] == "Sign in before anything else"
            junk = await Client.open(gw, SIGNIN_FIRST)
            await junk.ws.send("{")
            await junk.error_then_close(4009)
            polite = await Client.open(gw, SIGNIN_FIRST)
            await polite.send("pusher:ping")  # allowed before the signin
            await polite.expect("pusher:pong")
            await polite.signin("p", SIGNIN_FIRST)
            await polite.subscribe("news", SIGNIN_FIRST)
            await polite.aclose()
            assert gw.stats.auth_failed == 2

    arun(main())


def test_first_message_signin_has_a_deadline(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway(auth_timeout=0.3) as gw:
            mute = await Client.open(gw, SIGNIN_FIRST)
            assert (await mute.error_then_close(4009))["message"] == "Authentication timeout"

    arun(main())


def test_first_message_native_auth_with_the_gateway_verifier(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            c = await Client.open(gw, SIGNIN_FIRST)
            await c.ws.send(auth_message("alice", info={"name": "A"}))
            ok = decoded(await c.expect("pusher:signin_success"))
            assert json.loads(ok["user_data"]) == {"id": "alice", "user_info": {"name": "A"}}
            await c.subscribe("#server-to-user-alice", SIGNIN_FIRST)
            engine_of(gw).publish(SIGNIN_FIRST, "#server-to-user-alice", "hi", "1")
            await c.expect("hi", "#server-to-user-alice")
            forged = await Client.open(gw, SIGNIN_FIRST)
            await forged.ws.send(json.dumps({"type": "auth", "token": "forged"}))
            await forged.error_then_close(4009)
            # Apps without first_message="signin" do not take native messages.
            other = await Client.open(gw)
            await other.ws.send(auth_message("alice"))
            assert decoded(await other.expect("pusher:error"))["code"] == 4300
            for x in (c, other):
                await x.aclose()
            assert gw.stats.auth_failed == 1

    arun(main())


class AsyncVerifier:
    async def verify(self, message: Any, conn: Any) -> Identity:
        await asyncio.sleep(0.01)
        if token_of(message) != "good":
            raise AuthFailed(4401, "nope")
        return Identity("async-user")


def test_first_message_native_auth_async_verifier(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway(verifier=AsyncVerifier()) as gw:
            c = await Client.open(gw, SIGNIN_FIRST)
            await c.ws.send(json.dumps({"type": "auth", "token": "good"}))
            ok = decoded(await c.expect("pusher:signin_success"))
            assert json.loads(ok["user_data"]) == {"id": "async-user"}
            await c.subscribe("news", SIGNIN_FIRST)
            await c.aclose()
            bad = await Client.open(gw, SIGNIN_FIRST)
            await bad.ws.send(json.dumps({"type": "auth", "token": "bad"}))
            assert (await bad.error_then_close(4009))["message"] == "nope"

    arun(main())


# ====================================================================== activity, shutdown


def test_shutdown_closes_4200(arun: Any) -> None:
    async def main() -> None:
        gw = Gateway(Config(host="127.0.0.1", port=0, secret=SECRET, apps=[app_table(APP)]))
        await gw.start()
        c = await Client.open(gw)
        await c.subscribe("news")
        task = asyncio.ensure_future(gw.shutdown(grace=1.0))
        assert (await c.closed())[0] == 4200  # reconnect now
        await task

    arun(main())


def test_pusher_ping_then_4201(arun: Any) -> None:
    def fast(gw: Gateway) -> None:
        handler = engine_of(gw).handler
        handler.pong_timeout = 0.6
        handler.sweep_interval = 0.1

    quick = dataclasses.replace(APP, activity_timeout=1)

    async def main() -> None:
        async with pusher_gateway(quick, before_start=fast, ping_interval=0) as gw:
            lively, dead = await Client.open(gw, quick), await Client.open(gw, quick)
            await lively.expect("pusher:ping", None)
            await lively.send("pusher:pong")
            await dead.expect("pusher:ping")
            err = await dead.error_then_close(4201)
            assert err["message"] == "Pong reply not received"
            await lively.send("pusher:ping")
            await lively.expect("pusher:pong")
            await lively.aclose()

    arun(main())


def test_idle_close_is_4201_before_the_core_1001(arun: Any) -> None:
    async def main() -> None:
        # The core would close at idle_timeout with 1001 (it pings only every 60 s here).
        async with pusher_gateway(APP, ping_interval=60, idle_timeout=1.2) as gw:
            c = await Client.open(gw)
            code, _ = await c.closed()
            assert code == 4201

    arun(main())


# ====================================================================== bookkeeping


def test_indexes_empty_after_everyone_leaves(arun: Any) -> None:
    async def main() -> None:
        async with pusher_gateway() as gw:
            engine = engine_of(gw)
            cs = [await Client.open(gw) for _ in range(4)]
            for i, c in enumerate(cs):
                await c.subscribe("news")
                await c.join("presence-x", f"u{i % 2}")
                await c.signin(f"u{i % 2}", watchlist=["u0", "u1"])
            for c in cs:
                await c.aclose()
            await settle(lambda: engine.connection_count(APP) == 0)
            assert set(engine.sizes(APP).values()) == {0}
            assert engine.channels(APP) == {}
            assert not gw.registry

    arun(main())


def test_session_is_small() -> None:
    session = Session(APP, "handle", "1.2", 0.0)
    assert not hasattr(session, "__dict__")
    assert session.channels is None and session.presence is None  # created on first use


def test_default_app_is_dev_and_warns(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="uvgate.pusher"):
        gw = Gateway(Config(port=0, secret=SECRET))
    store = engine_of(gw).store
    app = store.by_key("app-key")
    assert app is not None and app.secret == DEV_APP.secret and app.client_events
    assert any("DEVELOPMENT SECRET" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="uvgate.pusher"):
        gw = Gateway(Config(port=0, secret=SECRET, app_id="9", app_key="k", app_secret="s"))
    app = engine_of(gw).store.by_id("9")
    assert app is not None and (app.key, app.secret) == ("k", "s")
    assert not any("DEVELOPMENT" in r.getMessage() for r in caplog.records)
    assert Gateway(Config(port=0, secret=SECRET, pusher=False)).pusher is None
    assert build_store(Config(apps=[app_table(APP)])).by_key(APP.key) == APP
