"""The http verifier against a real local endpoint shaped like Laravel's /broadcasting/auth.

Every test runs under asyncio and uvloop, and fails on any exception the loop
reports (a leaked task, an unclosed transport) as well as on any warning
(setup.cfg filterwarnings=error covers ResourceWarning from unclosed sessions).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket

import pytest
import uvloop
from aiohttp import web

from gateway.verifiers import (
    AuthFailed,
    ConnectionInfo,
    HttpVerifier,
    Identity,
    http_callback,
    load_verifier,
)

COOKIE = "laravel_session=eyJpdiI6IjEyMyJ9%3D%3D; XSRF-TOKEN=abc%3D"
BEARER = "Bearer 1|s3cr3t"


def conn(**headers):
    base = {"cookie": COOKIE, "authorization": BEARER, "x-other": "not forwarded"}
    base.update(headers)
    return ConnectionInfo(
        connection_id="n1-77",
        remote_ip="203.0.113.9",
        remote_port=55123,
        path="/app/key",
        query={"protocol": "7"},
        headers={k: v for k, v in base.items() if v is not None},
        subprotocol="pusher",
    )


AUTH = {"type": "auth", "token": "opaque-token"}


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Run a coroutine in a fresh loop of the given kind; fail on loop-reported errors."""

    def runner(coro):
        errors = []
        factory = uvloop.new_event_loop if request.param == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as r:
            r.get_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
            result = r.run(coro)
        assert not errors, errors
        return result

    return runner


class Backend:
    """An aiohttp.web app on 127.0.0.1:<ephemeral> recording what it is sent."""

    def __init__(self):
        self.requests = []  # (path, headers, json body)
        self.peers = set()  # client (ip, port) seen: one per TCP connection
        self.release = asyncio.Event()
        self.hits = {}
        app = web.Application()
        app.router.add_post("/{kind}", self.handle)
        app.router.add_get("/login", self.login)
        self.runner = web.AppRunner(app)

    async def __aenter__(self):
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.release.set()
        await self.runner.cleanup()

    def url(self, kind):
        return f"http://127.0.0.1:{self.port}/{kind}"

    async def login(self, request):
        self.hits["login"] = self.hits.get("login", 0) + 1
        return web.json_response({"user": "wrongly-followed"})

    async def handle(self, request):
        kind = request.match_info["kind"]
        self.peers.add(request.transport.get_extra_info("peername"))
        body = await request.json()
        self.requests.append((kind, request.headers.copy(), body))
        if kind == "ok":
            resp = web.json_response(
                {"user": "alice", "info": {"name": "Alice"}, "groups": ["private-room.1"]}
            )
            # Laravel sets a session cookie on every answer: it must not leak.
            resp.set_cookie("laravel_session", "alice-session")
            return resp
        if kind == "echo-user":  # the user is the forwarded bearer, to check pairing
            return web.json_response({"user": request.headers.get("Authorization", "-")})
        if kind == "laravel-user-id":
            return web.json_response({"user_id": 42, "user_info": {"name": "Li"}})
        if kind == "laravel-model":
            return web.json_response({"id": 7, "name": "Bo", "email": "bo@example.org"})
        if kind == "nested-user":
            return web.json_response({"user": {"id": 3, "name": "Cy"}})
        if kind == "no-user":
            return web.json_response({"ok": True})
        if kind == "html":
            return web.Response(text="<html>welcome</html>", content_type="text/html")
        if kind == "bad-groups":
            return web.json_response({"user": "u", "groups": "room"})
        if kind == "unauthorized":
            return web.json_response({"reason": "session expired"}, status=401)
        if kind == "unauthorized-html":
            return web.Response(text="<h1>401</h1>", status=401, content_type="text/html")
        if kind == "forbidden":
            return web.json_response({"reason": "not a member of this team"}, status=403)
        if kind == "forbidden-long":
            return web.json_response({"reason": "é" * 300}, status=403)
        if kind == "forbidden-control":
            return web.json_response({"reason": "bad\x1b[31m red"}, status=403)
        if kind == "forbidden-laravel":
            return web.json_response({"message": "This action is unauthorized."}, status=403)
        if kind == "slow":
            await self.release.wait()
            return web.json_response({"user": "late"})
        if kind == "error":
            return web.json_response({"reason": "db down"}, status=500)
        if kind == "redirect":
            raise web.HTTPFound("/login")
        if kind == "big":
            return web.Response(body=b'{"user":"' + b"x" * 100_000 + b'"}')
        raise web.HTTPNotFound()


async def refused(verifier, message=AUTH, c=None):
    with pytest.raises(AuthFailed) as info:
        await verifier.verify(message, c or conn())
    return info.value.code, info.value.reason


# --- success -----------------------------------------------------------------------


def test_ok_and_what_the_backend_receives(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("ok"), headers={"X-Api-Key": "k-123"})
            try:
                identity = await v.verify(AUTH, conn())
            finally:
                await v.aclose()
            return backend, identity

    backend, identity = run(go())
    assert identity == Identity("alice", {"name": "Alice"}, ("private-room.1",))
    [(kind, headers, body)] = backend.requests
    assert kind == "ok"
    assert headers["Cookie"] == COOKIE  # verbatim, not re-encoded
    assert headers["Authorization"] == BEARER
    assert headers["X-Forwarded-For"] == "203.0.113.9"
    assert headers["X-Api-Key"] == "k-123"
    assert headers["Content-Type"] == "application/json"
    assert "X-Other" not in headers
    assert body == {
        "message": AUTH,
        "connection": {
            "id": "n1-77",
            "remote_ip": "203.0.113.9",
            "remote_port": 55123,
            "path": "/app/key",
            "query": {"protocol": "7"},
            "headers": {"cookie": COOKIE, "authorization": BEARER},
            "subprotocol": "pusher",
        },
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("laravel-user-id", Identity("42", {"name": "Li"})),
        ("laravel-model", Identity("7")),
        ("nested-user", Identity("3")),
    ],
)
def test_laravel_style_answers(run, kind, expected):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url(kind))
            try:
                return await v.verify(AUTH, conn())
            finally:
                await v.aclose()

    assert run(go()) == expected


def test_forward_headers_option_and_static_headers_win(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(
                url=backend.url("ok"),
                forward_headers=["X-Other", "cookie"],
                headers={"Authorization": "Bearer operator"},
            )
            try:
                await v.verify(AUTH, conn(cookie=None))
            finally:
                await v.aclose()
            return backend.requests

    [(_, headers, body)] = run(go())
    assert headers["X-Other"] == "not forwarded"
    assert "Cookie" not in headers  # absent on the upgrade: not invented
    assert headers["Authorization"] == "Bearer operator"  # the peer cannot override it
    assert body["connection"]["headers"] == {"x-other": "not forwarded"}


def test_backend_cookies_are_not_replayed_for_the_next_user(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("ok"))
            try:
                await v.verify(AUTH, conn())  # backend answers with Set-Cookie
                await v.verify(AUTH, conn(cookie=None, authorization=None))
            finally:
                await v.aclose()
            return backend.requests

    first, second = run(go())
    assert first[1]["Cookie"] == COOKIE
    assert "Cookie" not in second[1]
    assert "Authorization" not in second[1]


# --- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("unauthorized", (4401, "session expired")),
        ("unauthorized-html", (4401, "rejected by auth backend")),
        ("forbidden", (4403, "not a member of this team")),
        ("forbidden-long", (4403, "é" * 50)),  # 100 bytes of UTF-8
        ("forbidden-control", (4403, "rejected by auth backend")),
        ("forbidden-laravel", (4403, "rejected by auth backend")),
        ("no-user", (4401, "auth backend returned no user")),
        ("html", (4401, "auth backend returned no user")),
        ("bad-groups", (4401, "auth backend returned a bad identity")),
        ("error", (4503, "auth backend unavailable")),
        ("missing", (4503, "auth backend unavailable")),  # 404
        ("big", (4503, "auth backend unavailable")),
    ],
)
def test_refusals(run, kind, expected):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url(kind))
            try:
                return await refused(v)
            finally:
                await v.aclose()

    assert run(go()) == expected


def test_redirect_is_not_followed(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("redirect"))
            try:
                result = await refused(v)
            finally:
                await v.aclose()
            return result, backend.hits

    result, hits = run(go())
    assert result == (4503, "auth backend unavailable")
    assert hits == {}


def test_timeout(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("slow"), timeout=0.2)
            loop = asyncio.get_running_loop()
            start = loop.time()
            try:
                result = await refused(v)
            finally:
                await v.aclose()
            return result, loop.time() - start

    result, elapsed = run(go())
    assert result == (4503, "auth backend timeout")
    assert 0.15 < elapsed < 2.0


def test_connection_refused(run):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        v = HttpVerifier(url=f"http://127.0.0.1:{port}/auth")
        try:
            return await refused(v)
        finally:
            await v.aclose()

    assert run(go()) == (4503, "auth backend unavailable")


def test_unserialisable_message_is_refused_without_a_request(run):
    async def go():
        v = HttpVerifier(url="http://127.0.0.1:9/never")
        try:
            return await refused(v, {"type": "auth", "token": b"\xff\xfe"})
        finally:
            await v.aclose()

    assert run(go()) == (4401, "auth message cannot be forwarded")


def test_bytes_and_int_keys_in_a_msgpack_message_are_forwarded(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("ok"))
            try:
                await v.verify({"type": "auth", "token": b"tok", 1: "x"}, conn())
            finally:
                await v.aclose()
            return backend.requests

    [(_, _, body)] = run(go())
    assert body["message"] == {"type": "auth", "token": "tok", "1": "x"}


# --- pooling and lifecycle ---------------------------------------------------------


def test_sequential_verifications_reuse_one_connection(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("ok"))
            try:
                for _ in range(20):
                    await v.verify(AUTH, conn())
            finally:
                await v.aclose()
            return backend

    backend = run(go())
    assert len(backend.requests) == 20
    assert len(backend.peers) == 1


def test_concurrent_verifications_stay_within_max_connections(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("echo-user"), max_connections=4)
            try:
                conns = [conn(authorization=f"Bearer u{i}") for i in range(200)]
                results = await asyncio.gather(*(v.verify(AUTH, c) for c in conns))
            finally:
                await v.aclose()
            return backend, results

    backend, results = run(go())
    # Each answer belongs to its own request, despite sharing 4 sockets.
    assert [r.user for r in results] == [f"Bearer u{i}" for i in range(200)]
    assert len(backend.requests) == 200
    assert 1 <= len(backend.peers) <= 4


def test_session_is_lazy_and_reopens_after_aclose(run):
    v = HttpVerifier(url="http://127.0.0.1:9/x")  # built outside any loop, as the loader is
    assert v._session is None

    async def go():
        async with Backend() as backend:
            v.url = backend.url("ok")
            await v.verify(AUTH, conn())
            first = v._session
            await v.aclose()
            assert v._session is None and first.closed
            await v.verify(AUTH, conn())
            assert v._session is not first
            await v.aclose()
            await v.aclose()  # idempotent
            return backend

    backend = run(go())
    assert len(backend.requests) == 2


def test_backend_failures_are_logged_without_flooding(run, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        v = HttpVerifier(url=f"http://api:hunter2@127.0.0.1:{port}/auth")
        try:
            for _ in range(5):
                await refused(v)
            v._log._last -= http_callback.LOG_INTERVAL  # the interval has passed
            await refused(v)
        finally:
            await v.aclose()

    # Under uvgate.*: the configured log format applies (tests/gateway/test_logs.py checks it).
    with caplog.at_level(logging.WARNING, logger="uvgate.verifiers.http"):
        run(go())
    records = [r for r in caplog.records if r.name == "uvgate.verifiers.http"]
    first, second = (r.getMessage() for r in records)
    assert "unavailable" in first and "suppressed" not in first
    assert f"http://127.0.0.1:{port}/auth" in first
    assert "hunter2" not in first
    assert second.endswith("(4 similar suppressed)")


# --- options -----------------------------------------------------------------------


def test_loader_and_defaults():
    v = load_verifier("http", {"url": "https://app.example/broadcasting/auth"})
    assert isinstance(v, HttpVerifier)
    assert v.requires_message is True
    assert v.timeout == 3.0
    assert v.max_connections == 100
    assert v.forward_headers == ("cookie", "authorization")
    assert v.headers == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://x/auth"}, "must be an http:// or https:// URL"),
        ({"url": "http:///nohost"}, "must be an http:// or https:// URL"),
        ({"url": 5}, "option 'url' must be a non-empty string"),
        ({"url": "http://x", "timeout": 0}, "option 'timeout' must be > 0"),
        ({"url": "http://x", "timeout": "3"}, "option 'timeout' must be a number"),
        ({"url": "http://x", "max_connections": 0}, "option 'max_connections' must be >= 1"),
        ({"url": "http://x", "max_connections": 2.5}, "must be an integer"),
        ({"url": "http://x", "headers": ["a"]}, "option 'headers' must be a table"),
        ({"url": "http://x", "headers": {"X-A": "1\r\nX-B: 2"}}, "bad value for 'X-A'"),
        ({"url": "http://x", "headers": {"Bad Name": "v"}}, "is not a header name"),
        ({"url": "http://x", "headers": {"Content-Length": "1"}}, "cannot be set"),
        ({"url": "http://x", "forward_headers": ["x-forwarded-for"]}, "cannot be set"),
        ({"url": "http://x", "forward_headers": ["host"]}, "cannot be set"),
        ({"url": "http://x", "forward_headers": [""]}, "option 'forward_headers' must be"),
    ],
)
def test_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        HttpVerifier(**options)


def test_credentials_in_the_url_become_a_static_basic_auth_header(run):
    async def go():
        async with Backend() as backend:
            v = HttpVerifier(url=backend.url("ok").replace("//", "//api:p%40ss@"))
            assert v.url == backend.url("ok")  # no secret in what gets logged
            try:
                await v.verify(AUTH, conn())  # the peer's Authorization is not forwarded
            finally:
                await v.aclose()
            return backend.requests

    [(_, headers, body)] = run(go())
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"api:p@ss").decode()
    assert headers["Cookie"] == COOKIE
    assert body["connection"]["headers"] == {"cookie": COOKIE}
    with pytest.raises(ValueError, match="credentials in 'url' and an Authorization"):
        HttpVerifier(url="http://a:b@x/", headers={"authorization": "Bearer k"})


def test_forward_headers_single_string_and_dedup():
    assert HttpVerifier(url="http://x", forward_headers="Cookie").forward_headers == ("cookie",)
    v = HttpVerifier(url="http://x", forward_headers=["cookie", "Cookie", "x-a"])
    assert v.forward_headers == ("cookie", "x-a")
