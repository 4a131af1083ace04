"""SIGHUP reloads the configuration without dropping a connection (``uvgate serve`` runs in
a subprocess, as an operator runs it; the verifier hand-over is also checked in process).

Seen before: SIGHUP killed the gateway at once, with no close frames.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateway.config import Config, ConfigError
from gateway.reload import plan_reload
from gateway.tokens import issue_token
from gateway.verifiers.base import AuthFailed, BaseVerifier, ConnectionInfo, Identity
from protocol.pusher.apps import App
from protocol.pusher.signatures import sign_channel
from tests.conftest import run_checked
from tests.gwtest import running_gateway, self_signed
from tests.pusher_api_helpers import call
from tests.served import LiveServer, workers_reached


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def native(port: int, secret: str, user: str = "u", scheme: str = "ws", **kw: Any):
    ws = await connect(f"{scheme}://127.0.0.1:{port}/ws", **kw)
    await ws.send(json.dumps({"type": "auth", "token": issue_token(secret, user)}))
    return ws, json.loads(await ws.recv())


async def still_open(ws: ClientConnection) -> None:
    await ws.send("still here")
    assert await asyncio.wait_for(ws.recv(), 2) == "still here"


def reload(server: LiveServer, expect: str = "configuration reloaded") -> str:
    mark = server.mark()
    server.send(signal.SIGHUP)
    return server.wait_log(expect, start=mark)


def lines_after(server: LiveServer, mark: int, settle: float = 0.5) -> list[str]:
    """What the server logged after ``mark``, start-up lines aside: its stderr is read
    by a thread, so a ``listening`` line written before the start line on stdout may
    still arrive after a ``mark()`` taken once that start line was seen."""
    time.sleep(settle)  # nothing more may come: give it the chance
    return [line for line in server.lines[mark:] if "msg=listening" not in line]


# -- what a reload may change ----------------------------------------------------------------
def test_the_plan_splits_reloadable_and_restart_only_options():
    running = Config(secret="a", port=6001, certfile="c", keyfile="k", log_level="info")
    plan = plan_reload(
        running,
        Config(secret="b", port=7000, certfile="c2", keyfile="k2", workers=2, log_level="debug"),
    )
    assert set(plan.changed) == {"secret", "certfile", "keyfile", "log_level"}
    assert set(plan.restart) == {"port", "workers"}
    assert plan.config.port == 6001 and plan.config.workers == 1  # running values kept
    assert plan.config.secret == "b" and plan.verifier and plan.tls and plan.logging
    # TLS on or off would change the listener: a restart.
    off = plan_reload(running, Config(secret="a", port=6001))
    assert set(off.restart) == {"certfile", "keyfile"} and off.config.certfile == "c"
    assert not plan_reload(running, running).changed


# -- native: secret, bad file, restart-only ------------------------------------------------------
def test_a_new_secret_without_dropping_a_connection(tmp_path: Path):
    cfg = write(tmp_path / "uvgate.toml", 'pusher = false\nsecret = "one"\n')
    with LiveServer(config=cfg) as server:

        async def before():
            ws, ack = await native(server.port, "one")
            assert ack["type"] == "auth_ok"
            return ws

        async def main():
            ws = await before()
            write(cfg, 'pusher = false\nsecret = "two"\n')
            line = await asyncio.to_thread(reload, server)
            assert "changed=secret" in line
            await still_open(ws)
            old, refused = await native(server.port, "one")
            assert refused["code"] == 4401
            new, ack = await native(server.port, "two")
            assert ack["type"] == "auth_ok"
            for sock in (ws, old, new):
                await sock.close()

        run_checked(main())
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pusher = false\nsecret = 5\n", "option 'secret' must be a string, not a int"),
        ('pusher = false\nsecret = "one"\nverifier = "jwt"\n', "jwt"),
        ('pusher = false\nsecret = "one\n', "not valid TOML"),
        ('pusher = false\nsecret = "one"\nnope = 1\n', "unknown option(s): nope"),
    ],
    ids=["type", "verifier", "toml", "unknown"],
)
def test_a_bad_file_is_one_line_and_changes_nothing(tmp_path: Path, text: str, problem: str):
    cfg = write(tmp_path / "uvgate.toml", 'pusher = false\nsecret = "one"\n')
    with LiveServer(config=cfg) as server:

        async def main():
            ws, _ = await native(server.port, "one")
            write(cfg, text)
            mark = server.mark()
            server.send(signal.SIGHUP)
            line = await asyncio.to_thread(server.wait_log, "reload failed", start=mark)
            assert problem in line, line
            assert await asyncio.to_thread(lines_after, server, mark) == [line]
            await still_open(ws)
            again, ack = await native(server.port, "one")
            assert ack["type"] == "auth_ok"
            await again.close()
            await ws.close()

        run_checked(main())


def test_a_sighup_as_soon_as_the_start_line_is_printed_reloads(tmp_path: Path):
    # The handler is installed before the start line (and READY): SIGHUP's default action
    # would otherwise kill a gateway reloaded right after it came up.
    cfg = write(tmp_path / "uvgate.toml", 'pusher = false\nsecret = "one"\n')
    with LiveServer(config=cfg) as server:
        reload(server)
        assert server.proc.poll() is None


def test_options_that_need_a_restart_are_named_and_kept(tmp_path: Path):
    cfg = write(tmp_path / "uvgate.toml", 'pusher = false\nsecret = "one"\n')
    with LiveServer(config=cfg) as server:
        other = socket.socket()
        other.bind(("127.0.0.1", 0))
        new_port = other.getsockname()[1]
        other.close()
        write(
            cfg,
            f'pusher = false\nsecret = "one"\nport = {new_port}\nws_path = "/elsewhere"\n'
            'log_format = "json"\n',
        )
        mark = server.mark()
        server.send(signal.SIGHUP)
        warning = server.wait_log("need a restart", start=mark)
        reloaded = server.wait_log("configuration reloaded", start=mark)
        # --port on the command line wins over the file anyway; ws_path needs a restart.
        assert "ws_path" in warning
        # The new log format is in effect for the lines after it.
        assert json.loads(reloaded)["changed"] == "log_format"

        async def main():
            ws, ack = await native(server.port, "one")  # the old port, the old path
            assert ack["type"] == "auth_ok"
            await ws.close()

        run_checked(main())


# -- Pusher apps ----------------------------------------------------------------------------------
APP_A = App(id="1", key="key-a", secret="secret-a")
APP_A2 = App(id="1", key="key-a", secret="secret-a2")
APP_B = App(id="2", key="key-b", secret="secret-b")


def apps_toml(*apps: App) -> str:
    return "".join(
        f'[[apps]]\nid = "{a.id}"\nkey = "{a.key}"\nsecret = "{a.secret}"\n' for a in apps
    )


async def pusher_socket(port: int, key: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(f"ws://127.0.0.1:{port}/app/{key}?protocol=7&client=js")
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 2))


async def subscribe_private(ws: ClientConnection, app: App, socket_id: str) -> dict[str, Any]:
    channel = "private-orders"
    auth = sign_channel(app.key, app.secret, socket_id, channel)
    await ws.send(
        json.dumps({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}})
    )
    return json.loads(await asyncio.wait_for(ws.recv(), 2))  # type: ignore[no-any-return]


def test_apps_added_removed_and_rotated(tmp_path: Path):
    cfg = write(tmp_path / "uvgate.toml", apps_toml(APP_A))
    with LiveServer(config=cfg) as server:

        async def main():
            a, hello = await pusher_socket(server.port, APP_A.key)
            socket_a = json.loads(hello["data"])["socket_id"]
            refused, error = await pusher_socket(server.port, APP_B.key)
            assert json.loads(error["data"])["code"] == 4001
            await refused.close()
            # Rotate A's secret, add B.
            write(cfg, apps_toml(APP_A2, APP_B))
            line = await asyncio.to_thread(reload, server)
            assert "changed=apps" in line
            # The socket of A goes on, and its next subscription is signed with the new
            # secret (what the app's auth endpoint now uses).
            answer = await subscribe_private(a, APP_A2, socket_a)
            assert answer["event"] == "pusher_internal:subscription_succeeded", answer
            b, hello = await pusher_socket(server.port, APP_B.key)
            assert hello["event"] == "pusher:connection_established"
            events = f"/apps/{APP_B.id}/events"
            body = {"name": "flash", "channel": "news", "data": "{}"}
            assert (await call(server.port, APP_B, "POST", events, body)).status == 200
            assert (await call(server.port, APP_A, "POST", "/apps/1/events", body)).status == 401
            assert (await call(server.port, APP_A2, "POST", "/apps/1/events", body)).status == 200
            # Remove B: new connections and API calls are refused, its socket goes on.
            write(cfg, apps_toml(APP_A2))
            await asyncio.to_thread(reload, server)
            gone, error = await pusher_socket(server.port, APP_B.key)
            assert json.loads(error["data"])["code"] == 4001
            await gone.close()
            assert (await call(server.port, APP_B, "POST", events, body)).status == 404
            await b.send(json.dumps({"event": "pusher:ping", "data": {}}))
            assert json.loads(await asyncio.wait_for(b.recv(), 2))["event"] == "pusher:pong"
            await a.close()
            await b.close()

        run_checked(main())


# -- TLS -----------------------------------------------------------------------------------------
def _der_of(ws: ClientConnection) -> bytes:
    ssl_object = ws.transport.get_extra_info("ssl_object")
    return ssl_object.getpeercert(binary_form=True)  # type: ignore[no-any-return]


def test_a_new_certificate_for_new_connections_only(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    cert1, key1 = self_signed(first)
    cert2, key2 = self_signed(second)
    live = tmp_path / "live"
    live.mkdir()
    certfile, keyfile = live / "cert.pem", live / "key.pem"
    certfile.write_bytes(cert1.read_bytes())
    keyfile.write_bytes(key1.read_bytes())
    cfg = write(
        tmp_path / "uvgate.toml",
        f'pusher = false\nsecret = "one"\ncertfile = "{certfile}"\nkeyfile = "{keyfile}"\n',
    )
    # Both certificates name the same subject (CN=localhost), which a verifying client
    # cannot tell apart as CAs: the test compares the certificates it was shown instead.
    trust = ssl.create_default_context()
    trust.check_hostname = False
    trust.verify_mode = ssl.CERT_NONE
    with LiveServer(config=cfg) as server:

        async def main():
            old, _ = await native(server.port, "one", scheme="wss", ssl=trust)
            der1 = _der_of(old)
            # A renewal: same paths, new files.
            certfile.write_bytes(cert2.read_bytes())
            keyfile.write_bytes(key2.read_bytes())
            await asyncio.to_thread(reload, server)
            new, ack = await native(server.port, "one", scheme="wss", ssl=trust)
            assert ack["type"] == "auth_ok"
            assert _der_of(new) != der1
            await still_open(old)  # the TLS connection made before goes on
            # A key that does not match: refused, named, and the new pair stays.
            keyfile.write_bytes(key1.read_bytes())
            line = await asyncio.to_thread(reload, server, "reload failed")
            assert "does not match the certificate" in line
            again, _ = await native(server.port, "one", scheme="wss", ssl=trust)
            assert _der_of(again) == _der_of(new)
            for ws in (old, new, again):
                await ws.close()

        run_checked(main())


# -- workers and systemd ----------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_every_worker_reloads_and_systemd_hears_of_it(tmp_path: Path, workers: int):
    base = f"pusher = false\nworkers = {workers}\n"
    cfg = write(tmp_path / "uvgate.toml", base + 'secret = "one"\n')
    notify = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(notify)
        sock.settimeout(20)
        with LiveServer(config=cfg, env={"NOTIFY_SOCKET": notify}) as server:
            assert b"READY=1" in sock.recv(4096)

            async def main() -> None:
                held = []
                for i in range(8):
                    ws, ack = await native(server.port, "one", f"u{i}")
                    assert ack["type"] == "auth_ok"
                    held.append(ws)
                write(cfg, base + 'secret = "two"\n')
                mark = server.mark()
                server.send(signal.SIGHUP)
                assert b"RELOADING=1" in await asyncio.to_thread(sock.recv, 4096)
                assert b"READY=1" in await asyncio.to_thread(sock.recv, 4096)
                # Each worker applied it (both said so before READY; their lines reach
                # this process through a pipe, so wait for them rather than race them).
                for _ in range(workers):
                    seen_at = server.wait_log("configuration reloaded", start=mark)
                    mark = server.lines.index(seen_at, mark) + 1
                done = [line for line in server.lines[mark:] if "configuration reloaded" in line]
                assert done == [], "more reloads than workers"
                # The new secret, on every worker.
                assert await workers_reached(server.port, "two", workers) == set(range(workers))
                for ws in held:
                    await still_open(ws)
                    await ws.close()

            run_checked(main())
            # A bad file: one line for the whole instance (the supervisor checks it once).
            write(cfg, 'pusher = false\nsecret = "two"\nworkers = "two"\n')
            mark = server.mark()
            server.send(signal.SIGHUP)
            line = server.wait_log("reload failed", start=mark)
            assert "option 'workers' must be an integer" in line
            assert lines_after(server, mark) == [line]
            # Refused before it began: systemd hears of no reload.
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(4096)
            assert server.stop() == 0


# -- the verifier hand-over ---------------------------------------------------------------------------
class Gated(BaseVerifier):
    """An async verifier that answers when the test says so; remembers being closed."""

    instances: ClassVar[list[Gated]] = []

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.gate = asyncio.Event()
        self.closed = False
        Gated.instances.append(self)

    async def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        await self.gate.wait()
        if message.get("token") != self.tag:
            raise AuthFailed(4401, f"not {self.tag}")
        return Identity(user=self.tag)

    async def aclose(self) -> None:
        self.closed = True


def test_the_old_verifier_finishes_its_verifications_then_is_closed(arun):
    Gated.instances.clear()

    async def main():
        spec = "tests.gateway.test_reload:Gated"
        async with running_gateway(
            verifier=spec, verifier_options={"tag": "a"}, pusher=False
        ) as gw:
            ws = await connect(f"ws://127.0.0.1:{gw.port}/ws")
            await ws.send(json.dumps({"type": "auth", "token": "a"}))
            await asyncio.sleep(0.05)  # held by verifier a
            plan = await gw.reload(gw.config.replace(verifier_options={"tag": "b"}))
            assert plan.changed == ("verifier_options",)
            first, second = Gated.instances
            assert gw.gate.verifier is second and gw.gate.in_flight(first) == 1
            await asyncio.sleep(0.2)
            assert not first.closed  # its verification is not answered yet
            first.gate.set()
            assert json.loads(await ws.recv())["user"] == "a"  # answered by the old one
            for _ in range(40):
                if first.closed:
                    break
                await asyncio.sleep(0.05)
            assert first.closed and not second.closed
            second.gate.set()
            new = await connect(f"ws://127.0.0.1:{gw.port}/ws")
            await new.send(json.dumps({"type": "auth", "token": "b"}))
            assert json.loads(await new.recv())["user"] == "b"
            await ws.close()
            await new.close()
            # A verifier that cannot be built changes nothing.
            with pytest.raises(ConfigError, match=r"needs option 'tag'"):
                await gw.reload(gw.config.replace(verifier_options={"nope": 1}))
            assert gw.gate.verifier is second

    arun(main())


def test_webhooks_added_by_a_reload_are_sent(arun):
    from tests.pusher_api_helpers import receiver_for

    hooked = App(id="7", key="key-7", secret="secret-7")

    async def main():
        async with (
            running_gateway(apps=[{"id": "7", "key": "key-7", "secret": "secret-7"}]) as gw,
            receiver_for(hooked) as receiver,
        ):
            assert gw.pusher.dispatcher is None  # no app had webhooks at start
            table = {"id": "7", "key": "key-7", "secret": "secret-7"}
            table["webhooks"] = [{"url": receiver.url, "event_types": ["channel_occupied"]}]
            plan = await gw.reload(gw.config.replace(apps=[table]))
            assert plan.changed == ("apps",)
            assert gw.pusher.dispatcher is not None
            ws, _ = await pusher_socket(gw.port, hooked.key)
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}}))
            await ws.recv()
            await receiver.until(
                lambda: any(e["name"] == "channel_occupied" for e in receiver.events)
            )
            await ws.close()
            # A duplicate app id is refused and changes nothing.
            with pytest.raises(ConfigError, match="duplicate app id"):
                await gw.reload(gw.config.replace(apps=[table, {**table, "key": "other"}]))
            assert gw.pusher.store.by_key("key-7") is not None

    arun(main())


def test_a_webhook_url_changed_by_a_reload_is_used(arun):
    from tests.pusher_api_helpers import receiver_for

    hooked = App(id="7", key="key-7", secret="secret-7")

    def table(url: str) -> dict[str, Any]:
        hook = {"url": url, "event_types": ["channel_occupied"]}
        return {"id": "7", "key": "key-7", "secret": "secret-7", "webhooks": [hook]}

    async def occupy(port: int, channel: str) -> None:
        ws, _ = await pusher_socket(port, hooked.key)
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        await ws.recv()
        await ws.close()

    def channels(receiver: Any) -> list[str]:
        return [e["channel"] for e in receiver.events]

    async def main():
        async with (
            receiver_for(hooked) as first,
            receiver_for(hooked) as second,
            running_gateway(apps=[table(first.url)]) as gw,
        ):
            await occupy(gw.port, "before")
            await first.until(lambda: channels(first) == ["before"])
            plan = await gw.reload(gw.config.replace(apps=[table(second.url)]))
            assert plan.changed == ("apps",)
            await occupy(gw.port, "after")
            await second.until(lambda: channels(second) == ["after"])
            assert channels(first) == ["before"]

    arun(main())
