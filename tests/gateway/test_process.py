"""The gateway as a user runs it: the uvgate command, signals, workers, TLS, TOML config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.tokens import verify_token
from protocol.ids import owner_of
from tests.conftest import run_checked
from tests.gwtest import self_signed
from tests.served import PYTHON, Served, workers_reached


def test_token_command_issues_a_valid_token():
    out = subprocess.run(
        [PYTHON, "-m", "gateway", "token", "--secret", "s", "--sub", "alice", "--ttl", "60"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert verify_token("s", out)["sub"] == "alice"


def test_bad_config_is_a_clear_error(tmp_path: Path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("port = 1\nnot_an_option = true\n")
    result = subprocess.run(
        [PYTHON, "-m", "gateway", "serve", "--config", str(cfg)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown option(s): not_an_option" in result.stderr
    result = subprocess.run(
        [PYTHON, "-m", "gateway", "serve", "--port", "abc"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "port" in result.stderr
    # Pusher channels are per process: several workers would lose events.
    result = subprocess.run(
        [PYTHON, "-m", "gateway", "serve", "--workers", "2"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--no-pusher" in result.stderr
    short = tmp_path / "short.toml"
    short.write_text('verifier = "jwt"\n[verifier_options]\nsecret = "short"\n')
    result = subprocess.run(
        [PYTHON, "-m", "gateway", "serve", "--config", str(short)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("uvgate: configuration error:") and "32 bytes" in result.stderr


def test_serve_prints_a_demo_token_and_sigterm_sends_1001_and_exits_0():
    with Served() as served:
        assert "WARNING: no --secret given" in served.banner
        demo = json.loads(served.banner.split("first message:")[1].strip().splitlines()[0])

        async def main():
            ws = await connect(f"ws://127.0.0.1:{served.port}/ws")
            await ws.send(json.dumps(demo))
            assert json.loads(await ws.recv())["user"] == "demo-user"
            served.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1001

        run_checked(main())
        code, err = served.stop()
        assert code == 0, err
        assert "stopped" in err


def test_env_and_flags_configure(tmp_path: Path):
    with Served(
        "--secret", "flag-secret", env={"UVGATE_APP": "chat", "UVGATE_SECRET": "env-secret"}
    ) as served:
        assert "app=chat" in served.banner
        # A configured secret is a real credential: no token is printed for it.
        assert "v1." not in served.banner and "uvgate token --sub" in served.banner
        from gateway.tokens import issue_token

        async def main():
            async with connect(f"ws://127.0.0.1:{served.port}/ws") as ws:
                # The flag wins over the environment.
                await ws.send(
                    json.dumps({"type": "auth", "token": issue_token("flag-secret", "f")})
                )
                assert json.loads(await ws.recv())["type"] == "auth_ok"

        run_checked(main())


def test_workers_share_the_port_and_ids_name_the_worker():
    with Served("--workers", "2", "--no-pusher", "--secret", "w") as served:

        async def main():
            assert await workers_reached(served.port, "w", 2) == {0, 1}

        run_checked(main())
        code, err = served.stop()
        assert code == 0, err


def test_wss_with_a_certificate_made_here(arun, tmp_path: Path):
    certfile, keyfile = (str(p) for p in self_signed(tmp_path))
    client_ctx = ssl.create_default_context(cafile=certfile)

    async def main():
        from tests.gwtest import auth_message, running_gateway

        async with running_gateway(certfile=certfile, keyfile=keyfile) as gw:
            async with connect(f"wss://localhost:{gw.port}/ws", ssl=client_ctx) as ws:
                await ws.send(auth_message("tls-user"))
                assert json.loads(await ws.recv())["user"] == "tls-user"
                await ws.send("over tls")
                assert await ws.recv() == "over tls"
            async with connect(f"wss://localhost:{gw.port}/ws", ssl=client_ctx) as ws:
                await ws.send(json.dumps({"type": "auth", "token": "bad"}))
                assert json.loads(await ws.recv())["code"] == 4401
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd.code == 4401

    arun(main())


def test_jwt_verifier_from_toml(tmp_path: Path):
    import jwt

    cfg = tmp_path / "jwt.toml"
    cfg.write_text(
        'verifier = "jwt"\n[verifier_options]\nsecret = "jwt-secret-of-at-least-32-bytes!!"\naudience = "uvgate"\n'
    )
    with Served("--config", str(cfg)) as served:
        good = jwt.encode(
            {"sub": "jwt-user", "aud": "uvgate", "exp": int(time.time()) + 60},
            "jwt-secret-of-at-least-32-bytes!!",
        )
        wrong_aud = jwt.encode(
            {"sub": "x", "aud": "other", "exp": int(time.time()) + 60},
            "jwt-secret-of-at-least-32-bytes!!",
        )

        async def main():
            async with connect(f"ws://127.0.0.1:{served.port}/ws") as ws:
                await ws.send(json.dumps({"type": "auth", "token": good}))
                assert json.loads(await ws.recv())["user"] == "jwt-user"
            async with connect(f"ws://127.0.0.1:{served.port}/ws") as ws:
                await ws.send(json.dumps({"type": "auth", "token": wrong_aud}))
                assert json.loads(await ws.recv()) == {
                    "type": "error",
                    "code": 4403,
                    "reason": "wrong audience",
                }
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd.code == 4403

        run_checked(main())


def test_http_callback_verifier_against_a_real_endpoint(arun):
    """Like Laravel's /broadcasting/auth: the cookie of the upgrade request is forwarded."""

    async def auth(request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("Cookie") != "session=ok":
            return web.json_response({"reason": "no session"}, status=401)
        if body["message"].get("token") == "banned":
            return web.json_response({"reason": "banned"}, status=403)
        if body["message"].get("token") == "slow":
            await asyncio.sleep(2)
        return web.json_response({"user": "laravel-user-7", "info": {"name": "Ann"}})

    async def main():
        from tests.gwtest import running_gateway

        app = web.Application()
        app.router.add_post("/broadcasting/auth", auth)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with running_gateway(
                verifier="http",
                verifier_options={
                    "url": f"http://127.0.0.1:{port}/broadcasting/auth",
                    "timeout": 0.5,
                },
            ) as gw:
                headers = {"Cookie": "session=ok"}
                async with connect(
                    f"ws://127.0.0.1:{gw.port}/ws", additional_headers=headers
                ) as ws:
                    await ws.send(json.dumps({"type": "auth", "token": "t"}))
                    assert json.loads(await ws.recv())["user"] == "laravel-user-7"
                for token, hdrs, code, reason in [
                    ("t", {}, 4401, "no session"),
                    ("banned", headers, 4403, "banned"),
                    ("slow", headers, 4503, "auth backend timeout"),
                ]:
                    async with connect(
                        f"ws://127.0.0.1:{gw.port}/ws", additional_headers=hdrs
                    ) as ws:
                        await ws.send(json.dumps({"type": "auth", "token": token}))
                        err = json.loads(await ws.recv())
                        assert (err["code"], err["reason"]) == (code, reason)
                        with pytest.raises(ConnectionClosed) as info:
                            await ws.recv()
                        assert info.value.rcvd.code == code
        finally:
            await runner.cleanup()

    arun(main())


def test_a_crashed_worker_is_restarted():
    with Served("--workers", "2", "--no-pusher", "--secret", "w") as served:
        import re

        children = subprocess.run(
            ["pgrep", "-P", str(served.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = subprocess.run(
                ["pgrep", "-P", str(served.proc.pid)], capture_output=True, text=True
            ).stdout.split()
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and children[0] not in now
        from gateway.tokens import issue_token

        async def main():
            seen = set()
            for i in range(200):  # until the restarted worker answers too
                try:
                    async with connect(f"ws://127.0.0.1:{served.port}/ws") as ws:
                        await ws.send(
                            json.dumps({"type": "auth", "token": issue_token("w", f"u{i}")})
                        )
                        seen.add(owner_of(json.loads(await ws.recv())["id"])[1])
                except OSError:
                    pass
                if seen == {0, 1}:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"only workers {seen} answered")

        run_checked(main())
        code, err = served.stop()
        assert code == 0, err
        assert re.search(r"worker \d exited unexpectedly", err)
