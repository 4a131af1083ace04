"""The programs in examples/ run and do what README.md says: in-process under both loops
(on an ephemeral port) and as the commands the README shows (a subprocess, stopped by pid)."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from examples import custom_verifier, embed
from gateway.config import Config, build_config
from gateway.server import Gateway
from gateway.tokens import issue_token
from gateway.verifiers import load_verifier
from tests.conftest import run_checked
from tests.served import PYTHON, ROOT, Program, free_port

UNBUFFERED = {"PYTHONUNBUFFERED": "1"}
SECRET = "examples-test-secret"
TICKET_SECRET = "change-me-to-a-long-random-secret"  # examples/custom_verifier.toml


async def recv_json(ws, timeout: float = 5.0):
    async with asyncio.timeout(timeout):
        return json.loads(await ws.recv())


async def closed_with(ws, timeout: float = 5.0) -> int:
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


# ----------------------------------------------------------------- examples/embed.py
def test_embed_callbacks_and_outside_broadcast(arun):
    async def main():
        config = Config(host="127.0.0.1", port=0, secret=SECRET, pusher=False, node_id=3)
        gateway = embed.build_gateway(config)
        await gateway.start()
        ticker = asyncio.ensure_future(embed.tick(gateway, 0.05))
        try:
            url = f"ws://127.0.0.1:{gateway.port}/ws"
            async with connect(url) as alice, connect(url) as bob:
                await alice.send(
                    json.dumps({"type": "auth", "token": issue_token(SECRET, "alice")})
                )
                assert (await recv_json(alice))["type"] == "auth_ok"
                assert (await recv_json(alice)) == {"type": "welcome", "user": "alice", "online": 1}
                await bob.send(json.dumps({"type": "auth", "token": issue_token(SECRET, "bob")}))
                assert (await recv_json(bob))["user"] == "bob"
                assert (await recv_json(bob))["online"] == 2
                assert gateway.registry.count(group=embed.LOBBY) == 2

                await alice.send(json.dumps({"text": "hi"}))
                while (msg := await recv_json(alice))["type"] == "tick":
                    pass
                assert msg == {"type": "ack", "n": 1}
                while (msg := await recv_json(bob))["type"] == "tick":
                    pass
                assert msg == {"type": "said", "user": "alice", "text": "hi"}
                # The broadcast from outside the gateway reaches the lobby.
                while (msg := await recv_json(bob))["type"] != "tick":
                    pass
                assert msg["n"] >= 1

                await bob.close()
                while (msg := await recv_json(alice))["type"] != "left":
                    pass
                assert msg == {"type": "left", "user": "bob", "code": 1000}
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await gateway.shutdown(grace=1.0)

    arun(main())


# ------------------------------------------------------- examples/custom_verifier.py
def test_ticket_verifier_accepts_refuses_and_joins_the_room(arun):
    async def main():
        verifier = custom_verifier.TicketVerifier(secret=TICKET_SECRET, rooms=["lobby"])
        config = Config(host="127.0.0.1", port=0, app="chat", pusher=False, node_id=3)
        gateway = Gateway(config, verifier=verifier)
        await gateway.start()
        try:
            url = f"ws://127.0.0.1:{gateway.port}/ws"
            async with connect(url) as ws:
                await ws.send(json.dumps(custom_verifier.make_ticket(TICKET_SECRET, "al", "lobby")))
                assert (await recv_json(ws))["user"] == "al"
                assert gateway.registry.count(group="lobby") == 1
                await ws.send(json.dumps({"type": "publish", "group": "lobby", "data": 1}))
                assert (await recv_json(ws)) == {
                    "type": "message",
                    "group": "lobby",
                    "from": "al",
                    "data": 1,
                }
            cases = [
                (custom_verifier.make_ticket(TICKET_SECRET, "al", "attic"), 4403),
                (custom_verifier.make_ticket("another-secret-entirely", "al", "lobby"), 4401),
                (custom_verifier.make_ticket(TICKET_SECRET, "al", "lobby", now=1.0), 4401),
                ({"type": "auth", "token": "x"}, 4401),
            ]
            for first, code in cases:
                async with connect(url) as ws:
                    await ws.send(json.dumps(first))
                    error = await recv_json(ws)
                    assert error["type"] == "error" and error["code"] == code
                    assert await closed_with(ws) == code
        finally:
            await gateway.shutdown(grace=1.0)

    arun(main())


def test_custom_verifier_toml_and_function_form_load():
    config = build_config(str(ROOT / "examples" / "custom_verifier.toml"), environ={})
    assert config.verifier == "examples.custom_verifier:TicketVerifier"
    gateway = Gateway(config.replace(port=0))
    assert isinstance(gateway.verifier, custom_verifier.TicketVerifier)
    assert gateway.verifier.rooms == {"lobby", "ops"}
    function = load_verifier("examples.custom_verifier:verify_function")
    assert function.name == "examples.custom_verifier:verify_function"
    with pytest.raises(ValueError, match="16 characters"):
        load_verifier("examples.custom_verifier:TicketVerifier", {"secret": "short"})


# ------------------------------------------------------ the commands README.md shows
def test_embed_script_round_trip_and_sigterm():
    port = free_port()
    prog = Program(
        [PYTHON, "examples/embed.py", "--port", str(port), "--interval", "0.1"],
        until="listening",
        then=1,
        cwd=ROOT,
        env=UNBUFFERED,
    )
    try:
        first = prog.out[1].split("first message: ", 1)[1].strip()

        async def main():
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(first)
                assert (await recv_json(ws))["user"] == "alice"
                assert (await recv_json(ws))["type"] == "welcome"
                while (await recv_json(ws))["type"] != "tick":
                    pass
                prog.proc.send_signal(signal.SIGTERM)
                assert await closed_with(ws) == 1001

        run_checked(main())
    finally:
        code, err = prog.stop()
    assert code == 0, err


def test_custom_verifier_served_from_the_toml_file():
    port = free_port()
    at_port = ("--port", str(port))
    prog = Program(
        [PYTHON, "-m", "gateway", "serve", "--config", "examples/custom_verifier.toml", *at_port],
        cwd=ROOT,
        env=UNBUFFERED,
    )
    try:

        async def main():
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps(custom_verifier.make_ticket(TICKET_SECRET, "al", "ops")))
                assert (await recv_json(ws))["type"] == "auth_ok"
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps(custom_verifier.make_ticket(TICKET_SECRET, "al", "x")))
                assert (await recv_json(ws))["code"] == 4403

        run_checked(main())
    finally:
        code, err = prog.stop()
    assert code == 0, err
    # The refusal is one structured line naming the verifier by its ``name``.
    assert "verifier=ticket code=4403" in err


def test_examples_use_only_the_public_api() -> None:
    """Examples import uvgate only through ``gateway`` (its ``__all__``), never internals."""
    import ast

    import gateway

    for path in sorted(ROOT.joinpath("examples").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.partition(".")[0]
                if top in ("gateway", "protocol", "bench"):
                    assert node.module == "gateway", f"{path.name} imports {node.module}"
                    for alias in node.names:
                        assert alias.name in gateway.__all__, f"{path.name}: {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.partition(".")[0] not in ("protocol", "bench"), path.name
