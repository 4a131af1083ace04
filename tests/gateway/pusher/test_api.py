"""The Pusher HTTP API end to end: the official ``pusher`` library (PyPI, synchronous, run in
a thread so the loop keeps serving) and raw signed requests for every refusal."""

from __future__ import annotations

import asyncio
import json
import time

import orjson
import pusher
import pytest

from protocol.pusher.apps import App
from tests.gwtest import metric_samples, sample
from tests.pusher_api_helpers import (
    APP,
    DISABLED,
    OTHER,
    SMALL,
    Socket,
    call,
    pusher_gateway,
    raw,
    read_response,
    request,
    signed_target,
)

EVENT = {"name": "ev", "data": "{}", "channels": ["ch"]}


# -- refusals ------------------------------------------------------------------------------


def test_good_request_then_bad_signature_401(arun):
    async def main():
        async with pusher_gateway() as run:
            good = await call(run.port, APP, "POST", "/apps/42/events", EVENT)
            assert (good.status, good.json()) == (200, {})
            assert good.headers["content-type"] == "application/json"
            bad = await call(run.port, APP, "POST", "/apps/42/events", EVENT, secret="nope")
            assert bad.status == 401
            assert bad.json() == {"error": "Invalid signature"}
            # Signed for another path: refused too.
            body = orjson.dumps(EVENT)
            target = signed_target(APP, "POST", "/apps/42/batch_events", body)
            moved = await request(run.port, "POST", target.replace("batch_events", "events"), body)
            assert moved.status == 401
            # Another app's credentials on this app's path.
            other = await call(run.port, OTHER, "POST", "/apps/42/events", EVENT)
            assert other.status == 401
            unsigned = await request(run.port, "POST", "/apps/42/events", body)
            assert unsigned.status == 401 and "auth_key" in unsigned.json()["error"]

    arun(main())


@pytest.mark.parametrize("skew", [-31, 31])
def test_timestamp_outside_the_window_is_refused(arun, skew):
    async def main():
        async with pusher_gateway(api_timestamp_window=30) as run:
            now = time.time()
            late = await call(run.port, APP, "POST", "/apps/42/events", EVENT, timestamp=now + skew)
            assert late.status == 401
            assert "Timestamp" in late.json()["error"]
            inside = now + (25 if skew > 0 else -25)
            ok = await call(run.port, APP, "POST", "/apps/42/events", EVENT, timestamp=inside)
            assert ok.status == 200

    arun(main())


def test_body_md5_must_match(arun):
    async def main():
        async with pusher_gateway() as run:
            wrong = await call(run.port, APP, "POST", "/apps/42/events", EVENT, md5="0" * 32)
            assert wrong.status == 401 and "body_md5" in wrong.json()["error"]
            missing = await call(run.port, APP, "POST", "/apps/42/events", EVENT, md5="")
            assert missing.status == 401
            # GET: the Python library sends the MD5 of the empty body; absent is fine too.
            with_md5 = await call(run.port, APP, "GET", "/apps/42/channels")
            without = await call(run.port, APP, "GET", "/apps/42/channels", md5="")
            assert with_md5.status == without.status == 200
            bad_get = await call(run.port, APP, "GET", "/apps/42/channels", md5="1" * 32)
            assert bad_get.status == 401

    arun(main())


def test_limits_413_and_400(arun):
    async def main():
        async with pusher_gateway() as run:
            port = run.port
            big = {"name": "ev", "data": "x" * 10241, "channel": "ch"}
            too_large = await call(port, APP, "POST", "/apps/42/events", big)
            assert too_large.status == 413
            assert "10 KB" in too_large.json()["error"]
            exact = {"name": "ev", "data": "x" * 10240, "channel": "ch"}
            assert (await call(port, APP, "POST", "/apps/42/events", exact)).status == 200

            many = {"name": "ev", "data": "{}", "channels": [f"c{i}" for i in range(101)]}
            assert (await call(port, APP, "POST", "/apps/42/events", many)).status == 400
            many["channels"] = many["channels"][:100]
            assert (await call(port, APP, "POST", "/apps/42/events", many)).status == 200

            batch = {"batch": [{"name": "e", "data": "1", "channel": "c"}] * 11}
            too_big = await call(port, APP, "POST", "/apps/42/batch_events", batch)
            assert too_big.status == 400 and "Batch" in too_big.json()["error"]
            batch["batch"] = batch["batch"][:10]
            assert (await call(port, APP, "POST", "/apps/42/batch_events", batch)).status == 200

            # The App's own limits, not the defaults.
            four = {"name": "ev", "data": "{}", "channels": ["a", "b", "c", "d"]}
            assert (await call(port, SMALL, "POST", "/apps/45/events", four)).status == 400
            three = {"batch": [{"name": "e", "data": "1", "channel": "c"}] * 3}
            assert (await call(port, SMALL, "POST", "/apps/45/batch_events", three)).status == 400

            bad_json = await call(port, APP, "POST", "/apps/42/events", b"{nope")
            assert bad_json.status == 400
            bad_channel = {"name": "ev", "data": "{}", "channel": "bad channel"}
            assert (await call(port, APP, "POST", "/apps/42/events", bad_channel)).status == 400

    arun(main())


def test_body_over_max_http_body_is_413_before_the_handler(arun):
    async def main():
        async with pusher_gateway(max_http_body=1000) as run:
            body = orjson.dumps({"name": "ev", "data": "x" * 2000, "channel": "ch"})
            target = signed_target(APP, "POST", "/apps/42/events", body)
            response = await request(run.port, "POST", target, body)
            assert response.status == 413
            assert run.api.stats.requests == 0  # refused by the connection

    arun(main())


def test_disabled_app_403_only_after_authentication(arun):
    async def main():
        async with pusher_gateway() as run:
            ok_sig = await call(run.port, DISABLED, "POST", "/apps/44/events", EVENT)
            assert ok_sig.status == 403
            bad_sig = await call(run.port, DISABLED, "POST", "/apps/44/events", EVENT, secret="x")
            assert bad_sig.status == 401

    arun(main())


def test_unknown_app_404_unknown_path_404_wrong_method_405(arun):
    async def main():
        async with pusher_gateway() as run:
            port = run.port
            unknown = await call(port, APP, "POST", "/apps/999/events", EVENT)
            assert (unknown.status, unknown.json()) == (404, {"error": "Unknown app"})
            nowhere = await call(port, APP, "GET", "/apps/42/nowhere")
            assert nowhere.status == 404
            deep = await call(port, APP, "GET", "/apps/42/channels/ch/members")
            assert deep.status == 404

            get_events = await call(port, APP, "GET", "/apps/42/events")
            assert get_events.status == 405 and get_events.headers["allow"] == "POST"
            post_channels = await call(port, APP, "POST", "/apps/42/channels", {})
            assert post_channels.status == 405 and post_channels.headers["allow"] == "GET"
            put_users = await call(port, APP, "PUT", "/apps/42/channels/presence-x/users")
            assert put_users.status == 405
            get_terminate = await call(port, APP, "GET", "/users/1/terminate_connections")
            assert get_terminate.status == 405
            assert run.api.stats.errors == 7

            # App-less route: the key finds the app; an unknown key is an auth failure.
            stranger = App(id="0", key="who", secret="x")
            no_app = await call(port, stranger, "POST", "/users/1/terminate_connections", {})
            assert no_app.status == 401

    arun(main())


def test_query_refusals(arun):
    async def main():
        async with pusher_gateway() as run:
            port = run.port
            user_count = [("info", "user_count")]
            r = await call(port, APP, "GET", "/apps/42/channels", params=user_count)
            assert r.status == 400  # user_count needs a presence- prefix
            r = await call(port, APP, "GET", "/apps/42/channels/public", params=user_count)
            assert r.status == 400
            r = await call(port, APP, "GET", "/apps/42/channels/public", params=[("info", "cache")])
            assert r.status == 400
            r = await call(port, APP, "GET", "/apps/42/channels/public/users")
            assert r.status == 400
            r = await call(port, APP, "GET", "/apps/42/channels/presence-x", params=user_count)
            assert (r.status, r.json()) == (200, {"occupied": False, "user_count": 0})

    arun(main())


def test_percent_encoded_path_signed_either_way(arun):
    async def main():
        async with pusher_gateway() as run:
            # Signed over the encoded path as sent, or over the plain name: both accepted.
            wire = "/apps/42/channels/presence%2Droom%3Bx"
            for signed_path in (wire, "/apps/42/channels/presence-room;x"):
                target = signed_target(APP, "GET", signed_path, params=[("info", "user_count")])
                query = target.split("?", 1)[1]
                r = await request(run.port, "GET", f"{wire}?{query}")
                assert (r.status, r.json()) == (200, {"occupied": False, "user_count": 0})
            target = signed_target(APP, "GET", "/apps/42/channels/other", secret="x")
            r = await request(run.port, "GET", f"{wire}?{target.split('?', 1)[1]}")
            assert r.status == 401

    arun(main())


def test_keep_alive_and_pipelining(arun):
    async def main():
        async with pusher_gateway() as run:
            reader, writer = await asyncio.open_connection("127.0.0.1", run.port)
            body = orjson.dumps(EVENT)
            for _ in range(3):  # one request at a time on one connection
                target = signed_target(APP, "POST", "/apps/42/events", body)
                writer.write(raw("POST", target, body, keep_alive=True))
                response = await asyncio.wait_for(read_response(reader), 5)
                assert response.status == 200
                assert response.headers.get("connection", "keep-alive") != "close"
            # Pipelined: a good one, a refused one, a good GET, answered in order.
            good = signed_target(APP, "POST", "/apps/42/events", body)
            bad = signed_target(APP, "POST", "/apps/42/events", body, secret="x")
            get = signed_target(APP, "GET", "/apps/42/channels")
            writer.write(
                raw("POST", good, body, keep_alive=True)
                + raw("POST", bad, body, keep_alive=True)
                + raw("GET", get, keep_alive=True)
            )
            statuses = [(await read_response(reader)).status for _ in range(3)]
            assert statuses == [200, 401, 200]
            writer.close()
            assert run.api.stats.requests == 6

    arun(main())


def test_metrics_include_api_counters(arun):
    async def main():
        async with pusher_gateway() as run:
            await call(run.port, APP, "POST", "/apps/42/events", EVENT)
            await call(run.port, APP, "POST", "/apps/42/events", EVENT, secret="x")
            text = (await request(run.port, "GET", "/metrics")).body.decode()
            got = metric_samples(text)
            app = {"worker": "0", "app_id": "42"}
            assert sample(got, "uvgate_pusher_api_requests_total", **app, status="200") == 1
            assert sample(got, "uvgate_pusher_api_requests_total", **app, status="401") == 1
            assert sample(got, "uvgate_pusher_api_errors_total", worker="0") == 1
            assert sample(got, "uvgate_pusher_api_events_total", **app) == 1
            assert sample(got, "uvgate_pusher_api_received_bytes_total", **app) > 0
            assert "uvgate_tcp_accepted_total" in text  # the core's counters stay
            assert "webhook" not in text  # no app has webhooks

    arun(main())


def test_separate_api_port_serves_http_only(arun):
    async def main():
        async with pusher_gateway(api_port=0) as run:
            api_port = run.engine.api_port
            assert api_port is not None and api_port != run.port
            on_api = await call(api_port, APP, "POST", "/apps/42/events", EVENT)
            on_main = await call(run.port, APP, "POST", "/apps/42/events", EVENT)
            assert on_api.status == on_main.status == 200
            up = await request(api_port, "GET", "/up")
            assert up.status == 200
            # No WebSocket there: the Pusher and native upgrades are refused.
            for path in (f"/app/{APP.key}?protocol=7", "/ws"):
                reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n".encode()
                )
                head = await asyncio.wait_for(reader.read(1000), 5)
                assert head.startswith(b"HTTP/1.1 404")
                writer.close()
            # The official library against the API port.
            info = await asyncio.to_thread(run.client(port=api_port).channels_info)
            assert info == {"channels": {}}
        assert run.engine.api_port is None  # closed by the shutdown hook
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", api_port)

    arun(main())


def test_trigger_info_without_subscribers(arun):
    async def main():
        async with pusher_gateway() as run:
            body = {
                "name": "ev",
                "data": "{}",
                "channels": ["a", "presence-b"],
                "info": "user_count,subscription_count",
            }
            r = await call(run.port, APP, "POST", "/apps/42/events", body)
            assert r.json() == {
                "channels": {
                    "a": {"subscription_count": 0},
                    "presence-b": {"user_count": 0, "subscription_count": 0},
                }
            }

    arun(main())


def test_official_library_trigger_refusals_and_errors(arun):
    async def main():
        async with pusher_gateway() as run:
            client = run.client()
            assert await asyncio.to_thread(client.trigger, ["a", "b"], "ev", {"x": 1}) == {}
            wrong = pusher.Pusher(
                app_id="42", key=APP.key, secret="wrong", host="127.0.0.1", port=run.port, ssl=False
            )
            with pytest.raises(pusher.errors.PusherBadAuth):
                await asyncio.to_thread(wrong.trigger, "a", "ev", {})
            off = run.client(DISABLED)
            with pytest.raises(pusher.errors.PusherForbidden):
                await asyncio.to_thread(off.trigger, "a", "ev", {})
            with pytest.raises(pusher.errors.PusherBadRequest):
                await asyncio.to_thread(client.channels_info, None, ["user_count"])

    arun(main())


# -- the official library against real subscribers -----------------------------------------


def test_official_trigger_reaches_a_subscriber_and_socket_id_excludes(arun):
    async def main():
        async with pusher_gateway() as run:
            client = run.client()
            a, b = await Socket.open(run), await Socket.open(run)
            await a.subscribe("orders")
            await b.subscribe("orders")
            await asyncio.to_thread(client.trigger, "orders", "created", {"id": 1})
            for sock in (a, b):
                msg = await sock.next_event()
                assert msg == {"event": "created", "channel": "orders", "data": '{"id": 1}'}

            # The publisher's own socket is left out.
            await asyncio.to_thread(client.trigger, "orders", "mine", "x", a.socket_id)
            assert (await b.next_event())["event"] == "mine"
            await asyncio.to_thread(client.trigger, ["orders", "other"], "all", "y")
            assert (await a.next_event())["event"] == "all"  # "mine" never came
            assert (await b.next_event())["event"] == "all"
            await a.close()
            await b.close()

    arun(main())


def test_official_trigger_batch(arun):
    async def main():
        async with pusher_gateway() as run:
            sock = await Socket.open(run)
            await sock.subscribe("one")
            await sock.subscribe("private-two")
            batch = [
                {"channel": "one", "name": "e1", "data": {"n": 1}},
                {"channel": "private-two", "name": "e2", "data": "plain"},
                {"channel": "nobody", "name": "e3", "data": "z"},
            ]
            assert await asyncio.to_thread(run.client().trigger_batch, batch) == {}
            first, second = await sock.next_event(), await sock.next_event()
            assert (first["channel"], first["event"], first["data"]) == ("one", "e1", '{"n": 1}')
            assert (second["channel"], second["data"]) == ("private-two", "plain")
            # Raw, with info: one entry per item, in order.
            body = {
                "batch": [
                    {"channel": "one", "name": "e", "data": "1", "info": "subscription_count"},
                    {"channel": "two", "name": "e", "data": "2"},
                ]
            }
            r = await call(run.port, APP, "POST", "/apps/42/batch_events", body)
            assert r.json() == {"batch": [{"subscription_count": 1}, {}]}
            await sock.close()

    arun(main())


def test_official_channels_info_channel_info_and_users(arun):
    async def main():
        async with pusher_gateway() as run:
            client = run.client()
            alice1, alice2, bob = [await Socket.open(run) for _ in range(3)]
            await alice1.subscribe("presence-room", "alice")
            await alice2.subscribe("presence-room", "alice")
            await bob.subscribe("presence-room", "bob")
            await bob.subscribe("public-news")
            await alice1.subscribe("presence-other", "alice")

            everything = await asyncio.to_thread(client.channels_info)
            assert everything == {
                "channels": {"presence-room": {}, "public-news": {}, "presence-other": {}}
            }
            rooms = await asyncio.to_thread(
                client.channels_info, "presence-r", ["user_count", "subscription_count"]
            )
            assert rooms == {
                "channels": {"presence-room": {"user_count": 2, "subscription_count": 3}}
            }
            counted = await asyncio.to_thread(
                client.channels_info, "public", ["subscription_count"]
            )
            assert counted == {"channels": {"public-news": {"subscription_count": 1}}}

            room = await asyncio.to_thread(
                client.channel_info, "presence-room", ["user_count", "subscription_count"]
            )
            assert room == {"occupied": True, "user_count": 2, "subscription_count": 3}
            vacant = await asyncio.to_thread(client.channel_info, "nobody-here")
            assert vacant == {"occupied": False}

            users = await asyncio.to_thread(client.users_info, "presence-room")
            assert sorted(u["id"] for u in users["users"]) == ["alice", "bob"]

            # After bob leaves, the counts follow.
            await bob.close()
            for _ in range(50):
                room = await asyncio.to_thread(client.channel_info, "presence-room", ["user_count"])
                if room["user_count"] == 1:
                    break
                await asyncio.sleep(0.02)
            assert room == {"occupied": True, "user_count": 1}
            users = await asyncio.to_thread(client.users_info, "presence-room")
            assert users == {"users": [{"id": "alice"}]}
            await alice1.close()
            await alice2.close()

    arun(main())


def test_cache_channel_info(arun):
    async def main():
        async with pusher_gateway() as run:
            client = run.client()
            empty = await asyncio.to_thread(client.channel_info, "cache-prices", ["cache"])
            assert empty == {"occupied": False}
            await asyncio.to_thread(client.trigger, "cache-prices", "tick", {"p": 3})
            info = await asyncio.to_thread(client.channel_info, "cache-prices", ["cache"])
            assert info["occupied"] is False
            assert info["cache"]["data"] == '{"p": 3}'
            assert 1790 <= info["cache"]["ttl"] <= 1800
            # A new subscriber gets the cached event right after subscribing.
            sock = await Socket.open(run)
            await sock.subscribe("cache-prices")
            cached = await sock.next_event()
            assert (cached["event"], cached["data"]) == ("tick", '{"p": 3}')
            await sock.close()

    arun(main())


def test_official_terminate_user_connections(arun):
    async def main():
        async with pusher_gateway() as run:
            u1a, u1b, u2 = [await Socket.open(run) for _ in range(3)]
            await u1a.signin("u1")
            await u1b.signin("u1")
            await u2.signin("u2")
            # Server-to-user events: #server-to-user-{id} reaches the signed-in sockets.
            body = {"name": "hi", "data": "{}", "channel": "#server-to-user-u1"}
            assert (await call(run.port, APP, "POST", "/apps/42/events", body)).status == 200
            assert (await u1a.next_event())["event"] == "hi"

            client = run.client()
            # pusher-http-python 3.3.4 posts to /users/{id}/terminate_connections.
            assert await asyncio.to_thread(client.terminate_user_connections, "u1") == {}
            for sock in (u1a, u1b):
                with pytest.raises(Exception) as info:
                    while True:
                        msg = await sock.recv()
                        if msg["event"] == "pusher:error":
                            assert json.loads(msg["data"])["code"] == 4009
                assert getattr(info.value, "rcvd", None) is not None
                assert info.value.rcvd.code == 4009
            assert await u2.silent(0.2)
            # With the /apps/{id} prefix too (other libraries); an unknown user is fine.
            path = "/apps/42/users/u2/terminate_connections"
            assert (await call(run.port, APP, "POST", path, {})).status == 200
            msg = await u2.recv()
            assert msg["event"] == "pusher:error"
            nobody = await call(
                run.port, APP, "POST", "/apps/42/users/nobody/terminate_connections", {}
            )
            assert (nobody.status, nobody.json()) == (200, {})
            bad = await call(
                run.port, APP, "POST", "/apps/42/users/a%20b/terminate_connections", {}
            )
            assert bad.status == 400

    arun(main())
