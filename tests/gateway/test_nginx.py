"""uvgate behind a real nginx, configured with the shipped examples/nginx.conf.

nginx (Debian's package; scripts/test-deps.sh installs it) runs from a generated
top-level config in a temp dir (pid, logs and temp paths there) that includes the example
with two changes only: the upstream port and the listen port. Clients connect to nginx
from their own source address (127.0.0.2, 127.0.0.3...), so the address nginx writes in
X-Forwarded-For differs from nginx's own (127.0.0.1, the trusted proxy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gateway.config import Config
from protocol.pusher.apps import DEV_APP
from tests.gwtest import running_gateway
from tests.pusher_api_helpers import read_response, signed_target
from tests.served import ROOT

EXAMPLE = ROOT / "examples" / "nginx.conf"
UPSTREAM = "server 127.0.0.1:6001;"
LISTEN = "listen 80;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        pytest.skip("nginx is missing and scripts/test-deps.sh could not install it")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_config(upstream_port: int, listen_port: int) -> str:
    """The example, pointed at this test's gateway and port (nothing else changes)."""
    text = EXAMPLE.read_text()
    assert text.count(UPSTREAM) == 1 and text.count(LISTEN) == 1
    return text.replace(UPSTREAM, f"server 127.0.0.1:{upstream_port};").replace(
        LISTEN, f"listen 127.0.0.1:{listen_port};"
    )


@contextlib.contextmanager
def nginx(directory: Path, upstream_port: int) -> Iterator[int]:
    """nginx in front of ``upstream_port``; yields its port; stopped by pid."""
    binary = nginx_binary()
    port = free_port()
    (directory / "uvgate.conf").write_text(site_config(upstream_port, port))
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root nginx would switch its worker to "nobody", who cannot enter the temp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {directory / 'access.log'};\n{temp}\n"
        f"    include {directory / 'uvgate.conf'};\n}}\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            "-c",
            str(directory / "nginx.conf"),
            "-p",
            str(directory),
            "-e",
            str(directory / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                log = (
                    (directory / "error.log").read_text()
                    if (directory / "error.log").exists()
                    else ""
                )
                raise AssertionError(f"nginx exited: {proc.stdout.read()} {log}")  # type: ignore[union-attr]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def source_socket(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def ws_url(port: int, path: str) -> str:
    return f"ws://127.0.0.1:{port}{path}"


def test_the_example_keeps_idle_sockets_longer_than_the_pings():
    text = EXAMPLE.read_text()
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"^\s*{name} (\d+)s;", text, re.M)
        assert match is not None, name
        seconds = int(match.group(1))
        assert seconds > Config().ping_interval and seconds > DEV_APP.activity_timeout
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text


def test_websockets_through_nginx_see_the_client_address(arun, tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, "uvgate.auth")

    async def main():
        async with running_gateway(trusted_proxies=["127.0.0.1"], auth_fail_limit=2) as gw:
            with nginx(tmp_path, gw.port) as port:
                # Native: upgrade and first-message auth through the proxy.
                from tests.gwtest import auth_message

                sock = source_socket("127.0.0.2", port)
                async with connect(ws_url(port, "/ws"), sock=sock) as ws:
                    await ws.send(auth_message("alice"))
                    assert json.loads(await ws.recv())["user"] == "alice"
                    assert next(iter(gw.registry)).ip == "127.0.0.2"
                    await ws.send("through nginx")
                    assert await ws.recv() == "through nginx"
                # Pusher: the connection, and an event triggered through the HTTP API
                # (also proxied) reaching it.
                sock = source_socket("127.0.0.4", port)
                pusher = ws_url(port, f"/app/{DEV_APP.key}?protocol=7&client=js")
                async with connect(pusher, sock=sock) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["event"] == "pusher:connection_established"
                    await ws.send(
                        json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}})
                    )
                    assert json.loads(await ws.recv())["event"] == (
                        "pusher_internal:subscription_succeeded"
                    )
                    body = json.dumps({"name": "flash", "channel": "news", "data": "{}"}).encode()
                    target = signed_target(DEV_APP, "POST", f"/apps/{DEV_APP.id}/events", body)
                    status = await http_post(port, target, body)
                    assert status == 200
                    event = json.loads(await ws.recv())
                    assert event["event"] == "flash" and event["channel"] == "news"
                # Two refusals from 127.0.0.2: its address, not nginx's, is charged...
                for _ in range(2):
                    sock = source_socket("127.0.0.2", port)
                    async with connect(ws_url(port, "/ws"), sock=sock) as ws:
                        await ws.send(json.dumps({"type": "auth", "token": "bad"}))
                        # The second one reaches the limit: 4429 says "back off".
                        assert json.loads(await ws.recv())["code"] in (4401, 4429)
                # ...so 127.0.0.2 gets 429 from the gateway, through nginx...
                with pytest.raises(InvalidStatus) as info:
                    async with connect(ws_url(port, "/ws"), sock=source_socket("127.0.0.2", port)):
                        pass
                assert info.value.response.status_code == 429
                # ...while another client of the same nginx still gets in.
                sock = source_socket("127.0.0.3", port)
                async with connect(ws_url(port, "/ws"), sock=sock) as ws:
                    await ws.send(auth_message("bob"))
                    assert json.loads(await ws.recv())["user"] == "bob"

    arun(main())
    refused = [r for r in caplog.records if r.getMessage() == "auth refused"]
    assert [r.fields["ip"] for r in refused] == ["127.0.0.2", "127.0.0.2"]  # type: ignore[attr-defined]


async def http_post(port: int, target: str, body: bytes) -> int:
    import asyncio

    reader, writer = await asyncio.open_connection(sock=source_socket("127.0.0.5", port))
    try:
        writer.write(
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        return (await asyncio.wait_for(read_response(reader), 5)).status
    finally:
        writer.close()
