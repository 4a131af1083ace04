"""First-message authentication end to end, with the websockets library as the client."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.verifiers.base import AuthFailed, BaseVerifier, Identity
from tests.gwtest import auth_message, running_gateway, token, url


async def expect_refusal(ws, code: int, reason_part: str) -> None:
    """The error frame first, then a close with the same code, the socket gone within 1 s."""
    error = json.loads(await ws.recv())
    assert error["type"] == "error"
    assert error["code"] == code
    assert reason_part in error["reason"]
    start = time.monotonic()
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == code
    await asyncio.wait_for(ws.wait_closed(), 1.0)
    assert time.monotonic() - start < 1.0


def test_good_token_gets_auth_ok_then_echo(arun):
    async def main():
        async with running_gateway() as gw, connect(url(gw)) as ws:
            await ws.send(auth_message("alice"))
            ack = json.loads(await ws.recv())
            assert ack["type"] == "auth_ok" and ack["user"] == "alice"
            assert ack["id"].startswith("700.")  # node 7, worker 0
            assert gw.registry.get(ack["id"]) is not None
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"

    arun(main())


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        (json.dumps({"type": "auth", "token": "v1.e30.AAAA"}), 4401, "bad signature"),
        (json.dumps({"type": "auth", "token": "nonsense"}), 4401, "malformed token"),
        ("not json at all", 4401, "not valid json"),
        (json.dumps(["auth"]), 4401, "must be an object"),
        (json.dumps({"type": "hello"}), 4401, "first message must be auth"),
        (json.dumps({"type": "auth"}), 4401, "missing token"),
    ],
)
def test_each_failure_sends_error_then_close(arun, first, code, reason):
    async def main():
        async with running_gateway() as gw, connect(url(gw)) as ws:
            await ws.send(first)
            await expect_refusal(ws, code, reason)
            assert len(gw.registry) == 0
            assert gw.stats.auth_failed == 1

    arun(main())


def test_expired_token(arun):
    async def main():
        async with running_gateway() as gw, connect(url(gw)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token("bob", ttl=-5)}))
            await expect_refusal(ws, 4401, "expired")

    arun(main())


def test_forbidden_by_verifier_and_nothing_else_delivered(arun):
    class Forbid(BaseVerifier):
        name = "forbid"

        def verify(self, message, conn):
            raise AuthFailed(4403, "not on this gateway")

    async def main():
        async with running_gateway(verifier=Forbid()) as gw, connect(url(gw)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "x"}))
            # A broadcast to everyone must not reach a refused connection.
            gw.registry.broadcast(None, {"leak": True})
            await expect_refusal(ws, 4403, "not on this gateway")

    arun(main())


def test_refusal_is_logged_with_ip_and_reason(arun, caplog):
    async def main():
        async with running_gateway() as gw, connect(url(gw)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "bad"}))
            await expect_refusal(ws, 4401, "malformed")

    with caplog.at_level(logging.WARNING, logger="uvgate.auth"):
        arun(main())
    records = [r for r in caplog.records if r.name == "uvgate.auth"]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["ip"] == "127.0.0.1"
    assert fields["reason"] == "malformed token"
    assert fields["verifier"] == "hmac"
    assert fields["code"] == 4401
    assert fields["conn"].startswith("700.")


def test_silence_is_closed_with_4408(arun):
    async def main():
        async with running_gateway(auth_timeout=0.3) as gw, connect(url(gw)) as ws:
            start = time.monotonic()
            await expect_refusal(ws, 4408, "timeout")
            assert 0.25 < time.monotonic() - start < 1.5
            assert gw.stats.auth_timeouts == 1

    arun(main())


def test_peer_that_ignores_close_is_aborted(arun):
    """A client that never answers the close frame is dropped within close_timeout."""

    async def main():
        async with running_gateway(close_timeout=0.3) as gw:
            from protocol.frames import OP_TEXT, FrameParser, encode_client_frame

            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            from tests.gwtest import upgrade_request

            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            writer.write(encode_client_frame(OP_TEXT, b'{"type":"auth","token":"x"}'))
            start = time.monotonic()
            data = b""
            while chunk := await asyncio.wait_for(reader.read(4096), 2):
                data += chunk
            elapsed = time.monotonic() - start
            assert 0.25 < elapsed < 1.0
            events = FrameParser(require_mask=False).feed(data)
            assert json.loads(events[0].data)["code"] == 4401
            assert events[1].code == 4401
            writer.close()

    arun(main())


def test_msgpack_subprotocol(arun):
    async def main():
        async with running_gateway() as gw, connect(url(gw), subprotocols=["uvgate.msgpack"]) as ws:
            assert ws.subprotocol == "uvgate.msgpack"
            await ws.send(msgpack.packb({"type": "auth", "token": token("carol")}))
            ack = msgpack.unpackb(await ws.recv())
            assert ack["type"] == "auth_ok" and ack["user"] == "carol"
        async with running_gateway() as gw, connect(url(gw), subprotocols=["uvgate.msgpack"]) as ws:
            await ws.send(msgpack.packb({"type": "auth", "token": "bad"}))
            error = msgpack.unpackb(await ws.recv())
            assert error == {"type": "error", "code": 4401, "reason": "malformed token"}
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4401

    arun(main())


def test_async_verifier_keeps_pipelined_messages_in_order(arun):
    class Slow(BaseVerifier):
        name = "slow"

        async def verify(self, message, conn):
            await asyncio.sleep(0.05)
            if message.get("token") != "ok":
                raise AuthFailed(4401, "nope")
            return Identity(user="slowpoke")

    async def main():
        async with running_gateway(verifier=Slow()) as gw, connect(url(gw)) as ws:
            # Auth and two messages in a burst: they arrive while the verifier runs.
            await ws.send(json.dumps({"type": "auth", "token": "ok"}))
            await ws.send("one")
            await ws.send("two")
            assert json.loads(await ws.recv())["user"] == "slowpoke"
            assert await ws.recv() == "one"
            assert await ws.recv() == "two"
        async with running_gateway(verifier=Slow()) as gw, connect(url(gw)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "no"}))
            await ws.send("must not echo")
            await expect_refusal(ws, 4401, "nope")

    arun(main())


def test_verifier_crash_is_1011_without_details(arun):
    class Broken(BaseVerifier):
        name = "broken"

        def verify(self, message, conn):
            raise RuntimeError("database password is hunter2")

    async def main():
        async with running_gateway(verifier=Broken()) as gw, connect(url(gw)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "x"}))
            await expect_refusal(ws, 1011, "internal error")

    arun(main())


def test_rate_limit_turns_into_4429_then_http_429(arun):
    async def main():
        async with running_gateway(auth_fail_limit=3) as gw:
            codes = []
            for _ in range(3):
                async with connect(url(gw)) as ws:
                    await ws.send(json.dumps({"type": "auth", "token": "bad"}))
                    codes.append(json.loads(await ws.recv())["code"])
            assert codes == [4401, 4401, 4429]
            from websockets.exceptions import InvalidStatus

            with pytest.raises(InvalidStatus) as info:
                async with connect(url(gw)):
                    pass
            response = info.value.response
            assert response.status_code == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert gw.stats.rate_limited == 1

    arun(main())


def test_none_verifier_needs_no_auth_message(arun):
    async def main():
        from gateway.verifiers import load_verifier

        async with (
            running_gateway(verifier=load_verifier("none", {})) as gw,
            connect(url(gw)) as ws,
        ):
            await ws.send("first message is just data")
            assert await ws.recv() == "first message is just data"
            assert len(gw.registry) == 1

    arun(main())


def test_token_groups_are_joined(arun):
    async def main():
        async with running_gateway() as gw, connect(url(gw)) as ws:
            await ws.send(
                json.dumps({"type": "auth", "token": token("dan", groups=["room1"], info={"n": 1})})
            )
            await ws.recv()
            assert gw.registry.count(group="room1") == 1
            (conn,) = gw.registry.of_user("dan")
            assert conn.identity == Identity("dan", {"n": 1}, ("room1",))

    arun(main())
