"""The registry from the outside: send, close and broadcast by id, user and group."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protocol.ids import owner_of
from tests.gwtest import auth_message, running_gateway, url


async def authed(gw, user, **kw):
    ws = await connect(url(gw), **kw)
    first = auth_message(user)
    if kw.get("subprotocols") == ["uvgate.msgpack"]:
        await ws.send(msgpack.packb(json.loads(first)))
        ack = msgpack.unpackb(await ws.recv())
    else:
        await ws.send(first)
        ack = json.loads(await ws.recv())
    return ws, ack["id"]


def test_ids_are_unique_unguessable_and_name_their_owner(arun):
    async def main():
        async with running_gateway() as gw:
            ids = set()
            for i in range(20):
                ws, cid = await authed(gw, f"u{i}")
                ids.add(cid)
                await ws.close()
            assert len(ids) == 20
            assert {owner_of(i) for i in ids} == {(7, 0)}
            randoms = sorted(int(i.split(".")[1]) for i in ids)
            assert randoms[-1] > 2**40  # 63 random bits, not a counter

    arun(main())


def test_send_and_close_by_id(arun):
    async def main():
        async with running_gateway() as gw:
            ws, cid = await authed(gw, "alice")
            assert gw.registry.send(cid, {"hello": 1})
            assert json.loads(await ws.recv()) == {"hello": 1}
            assert not gw.registry.send("700.1", {"x": 1})  # unknown id
            assert gw.registry.close(cid, 4000, "kicked")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4000 and info.value.rcvd.reason == "kicked"
            assert cid not in gw.registry
            assert not gw.registry.send(cid, {"late": 1})

    arun(main())


def test_user_index_with_several_connections(arun):
    async def main():
        async with running_gateway() as gw:
            a1, _ = await authed(gw, "alice")
            a2, _ = await authed(gw, "alice")
            b, _ = await authed(gw, "bob")
            assert gw.registry.count(user="alice") == 2
            assert gw.registry.send_to_user("alice", {"n": 1}) == 2
            assert json.loads(await a1.recv()) == {"n": 1}
            assert json.loads(await a2.recv()) == {"n": 1}
            await a1.close()
            await asyncio.sleep(0.05)
            assert gw.registry.count(user="alice") == 1
            assert gw.registry.close_user("alice", 4000, "bye") == 1
            with pytest.raises(ConnectionClosed):
                await a2.recv()
            assert gw.registry.users() == ["bob"]
            await b.close()

    arun(main())


def test_broadcast_to_group_ids_and_everyone_encodes_per_codec(arun):
    async def main():
        async with running_gateway() as gw:
            j, jid = await authed(gw, "json-user")
            m, mid = await authed(gw, "msgpack-user", subprotocols=["uvgate.msgpack"])
            other, oid = await authed(gw, "other")
            gw.registry.join(jid, "room")
            gw.registry.join(mid, "room")
            assert gw.registry.broadcast("room", {"r": 1}) == 2
            assert json.loads(await j.recv()) == {"r": 1}
            assert msgpack.unpackb(await m.recv()) == {"r": 1}
            assert gw.registry.broadcast([jid, oid, "700.999"], {"ids": 1}) == 2
            assert json.loads(await j.recv()) == {"ids": 1}
            assert json.loads(await other.recv()) == {"ids": 1}
            assert gw.registry.broadcast(None, {"all": 1}, exclude=oid) == 2
            assert json.loads(await j.recv()) == {"all": 1}
            assert msgpack.unpackb(await m.recv()) == {"all": 1}
            gw.registry.leave(jid, "room")
            assert gw.registry.members("room")[0].id == mid
            for ws in (j, m, other):
                await ws.close()

    arun(main())


def test_chat_app_join_publish_leave(arun):
    async def main():
        async with running_gateway(app="chat") as gw:
            a, _ = await authed(gw, "alice")
            b, _ = await authed(gw, "bob")
            for ws in (a, b):
                await ws.send(json.dumps({"type": "join", "group": "lobby"}))
                assert json.loads(await ws.recv()) == {"type": "joined", "group": "lobby"}
            await a.send(json.dumps({"type": "publish", "group": "lobby", "data": {"t": "hi"}}))
            for ws in (a, b):
                msg = json.loads(await ws.recv())
                assert msg == {
                    "type": "message",
                    "group": "lobby",
                    "from": "alice",
                    "data": {"t": "hi"},
                }
            await b.send(json.dumps({"type": "nonsense", "group": "lobby"}))
            assert json.loads(await b.recv())["code"] == 4400
            await b.send(json.dumps({"type": "leave", "group": "lobby"}))
            assert json.loads(await b.recv())["type"] == "left"
            assert gw.registry.count(group="lobby") == 1
            await a.close()
            await b.close()

    arun(main())


def test_embedding_callbacks_sync_and_async(arun):
    seen: list[str] = []

    def on_connect(conn):
        seen.append(f"connect {conn.user}")
        conn.send({"welcome": conn.user})

    async def on_message(conn, data):
        await asyncio.sleep(0)
        conn.send({"got": data})

    def on_close(conn, code):
        seen.append(f"close {conn.user} {code}")

    async def main():
        async with running_gateway(
            on_connect=on_connect, on_message=on_message, on_close=on_close
        ) as gw:
            ws, _ = await authed(gw, "emb")
            assert json.loads(await ws.recv()) == {"welcome": "emb"}
            await ws.send("ping")
            assert json.loads(await ws.recv()) == {"got": "ping"}
            await ws.close()
            await asyncio.sleep(0.05)
        assert seen == ["connect emb", "close emb 1000"]

    arun(main())


def test_app_exception_closes_1011_and_server_survives(arun):
    def on_message(conn, data):
        raise ValueError("boom")

    async def main():
        async with running_gateway(on_message=on_message) as gw:
            ws, _ = await authed(gw, "x")
            await ws.send("trigger")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1011 and info.value.rcvd.reason == "internal error"
            ws2, _ = await authed(gw, "y")  # still serving
            await ws2.close()

    arun(main())


def test_shutdown_sends_1001_to_everyone(arun):
    async def main():
        async with running_gateway() as gw:
            clients = [(await authed(gw, f"u{i}"))[0] for i in range(5)]
            waiting = await connect(url(gw))  # not yet authenticated
            await gw.shutdown(grace=2.0)
            for ws in [*clients, waiting]:
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await ws.recv()
                assert info.value.rcvd.code == 1001
            assert len(gw.registry) == 0 and not gw.timers.pending and not gw.timers.closing

    arun(main())
