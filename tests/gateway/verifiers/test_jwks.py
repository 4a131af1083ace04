"""The jwt verifier with ``jwks_url``: a real JWKS endpoint (aiohttp, free port) served by
the test, on the same event loop as the verifier, so a blocking fetch could never get its
answer. Time is a fake clock set on the cache: max age and the minimum refetch interval
are checked without sleeping."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from websockets.asyncio.client import connect

from gateway.verifiers import AuthFailed, ConnectionInfo, Identity, JwtVerifier, load_verifier
from tests.gwtest import running_gateway, url

CONN = ConnectionInfo("c9-1", "198.51.100.2", 40000, "/ws")
KEY_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_B = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_EC = ec.generate_private_key(ec.SECP256R1())


def jwk(private, kid, **extra):
    algo = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    data = algo.to_jwk(private.public_key(), as_dict=True)
    return {**data, "kid": kid, "use": "sig", **extra}


def token(private=KEY_A, kid="a", sub="alice", alg="RS256"):
    now = int(time.time())
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode({"sub": sub, "exp": now + 60}, private, algorithm=alg, headers=headers)


def auth(tok):
    return {"type": "auth", "token": tok}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Jwks:
    """A JWKS endpoint on 127.0.0.1:<free port>: ``keys`` is what it serves, ``status``
    its answer code, ``requests`` how often it was asked."""

    def __init__(self, *keys, cache_control=None):
        self.keys = list(keys)
        self.status = 200
        self.cache_control = cache_control
        self.delay = 0.0
        self.requests = 0
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self.handle)
        self.runner = web.AppRunner(app)

    async def __aenter__(self):
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/.well-known/jwks.json"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()

    async def handle(self, request):
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status, text="down for maintenance")
        headers = {"Cache-Control": self.cache_control} if self.cache_control else None
        return web.json_response({"keys": self.keys}, headers=headers)


def verifier(jwks_url, clock=None, **options):
    v = JwtVerifier(jwks_url=jwks_url, **options)
    if clock is not None:
        v._jwks._clock = clock
    return v


async def check(v, tok):
    """``verify`` as the gateway calls it: sync result, or awaited when it is awaitable."""
    result = v.verify(auth(tok), CONN)
    if not isinstance(result, Identity):
        result = await result
    return result


async def refused(v, tok):
    with pytest.raises(AuthFailed) as info:
        await check(v, tok)
    return info.value.code, info.value.reason


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fetches_once_then_verifies_synchronously(arun):
    async def main():
        async with Jwks(jwk(KEY_A, "a")) as server:
            v = verifier(server.url)
            try:
                first = v.verify(auth(token()), CONN)
                assert not isinstance(first, Identity)  # a fetch: a coroutine to await
                assert await first == Identity("alice")
                # Fresh set, known kid: the fast path returns the identity itself.
                assert v.verify(auth(token(sub="bob")), CONN) == Identity("bob")
                assert server.requests == 1
            finally:
                await v.aclose()

    arun(main())


def test_concurrent_tokens_share_one_fetch(arun):
    async def main():
        async with Jwks(jwk(KEY_A, "a")) as server:
            server.delay = 0.2
            v = verifier(server.url)
            try:
                users = await asyncio.gather(*(check(v, token(sub=f"u{i}")) for i in range(20)))
                assert [u.user for u in users] == [f"u{i}" for i in range(20)]
                assert server.requests == 1
            finally:
                await v.aclose()

    arun(main())


def test_key_rotation_unknown_kid_refetches_once(arun):
    async def main():
        clock = Clock()
        async with Jwks(jwk(KEY_A, "a")) as server:
            v = verifier(server.url, clock, jwks_min_interval=10)
            try:
                assert (await check(v, token())).user == "alice"
                # The provider rotates: b replaces a. A token signed with b has a kid
                # the cache does not know: one refetch, then it verifies.
                server.keys = [jwk(KEY_B, "b")]
                clock.now += 11
                assert (await check(v, token(KEY_B, "b", sub="bob"))).user == "bob"
                assert server.requests == 2
                # a is gone from the new set; within the interval no further fetch.
                assert await refused(v, token()) == (4401, "unknown key id")
                assert server.requests == 2
            finally:
                await v.aclose()

    arun(main())


def test_made_up_kids_cannot_make_it_hammer_the_endpoint(arun):
    async def main():
        clock = Clock()
        async with Jwks(jwk(KEY_A, "a")) as server:
            v = verifier(server.url, clock, jwks_min_interval=30)
            try:
                await check(v, token())
                for i in range(50):
                    forged = token(KEY_B, f"made-up-{i}")
                    assert await refused(v, forged) == (4401, "unknown key id")
                    clock.now += 0.5  # 25 s in all: still inside the interval
                assert server.requests == 1
                clock.now += 5  # past the interval: one more fetch for the next unknown kid
                assert await refused(v, token(KEY_B, "made-up-x")) == (4401, "unknown key id")
                assert await refused(v, token(KEY_B, "made-up-y")) == (4401, "unknown key id")
                assert server.requests == 2
                # A forged token naming a real kid still fails on the signature.
                assert await refused(v, token(KEY_B, "a")) == (4401, "bad signature")
            finally:
                await v.aclose()

    arun(main())


def test_max_age_and_cache_control(arun):
    async def main():
        clock = Clock()
        async with Jwks(jwk(KEY_A, "a")) as server:
            v = verifier(server.url, clock, jwks_max_age=300, jwks_min_interval=10)
            try:
                await check(v, token())
                clock.now += 299
                assert v.verify(auth(token()), CONN) == Identity("alice")  # still fresh
                clock.now += 2
                await check(v, token())  # expired: refetched
                assert server.requests == 2
                # A shorter max-age from the provider wins...
                server.cache_control = "public, max-age=60"
                clock.now += 301
                await check(v, token())
                assert server.requests == 3
                clock.now += 61
                await check(v, token())
                assert server.requests == 4
                # ... but never below the minimum interval.
                server.cache_control = "max-age=0"
                clock.now += 61
                await check(v, token())
                clock.now += 5
                assert v.verify(auth(token()), CONN) == Identity("alice")
                assert server.requests == 5
            finally:
                await v.aclose()

    arun(main())


def test_endpoint_down_is_4503_and_logged_once(arun, caplog):
    async def main():
        clock = Clock()
        async with Jwks(jwk(KEY_A, "a")) as server:
            server.status = 503
            v = verifier(server.url, clock, jwks_min_interval=10)
            try:
                for _ in range(5):
                    assert await refused(v, token()) == (4503, "auth keys unavailable")
                # One attempt per interval, however many tokens arrive.
                assert server.requests == 1
                server.status = 200
                clock.now += 10
                assert (await check(v, token())).user == "alice"
                assert server.requests == 2
            finally:
                await v.aclose()

    with caplog.at_level(logging.WARNING, logger="uvgate.verifiers.jwt"):
        arun(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "uvgate.verifiers.jwt"]
    assert len(lines) == 1 and "unavailable" in lines[0] and "HTTP 503" in lines[0]


def test_endpoint_unreachable_is_4503():
    async def main():
        url = f"http://127.0.0.1:{closed_port()}/jwks.json"
        v = verifier(url)
        try:
            assert await refused(v, token()) == (4503, "auth keys unavailable")
        finally:
            await v.aclose()

    from tests.conftest import run_checked

    run_checked(main())


def test_last_good_set_outlives_an_outage(arun):
    async def main():
        clock = Clock()
        async with Jwks(jwk(KEY_A, "a")) as server:
            v = verifier(server.url, clock, jwks_max_age=60, jwks_min_interval=10)
            try:
                await check(v, token())
                server.status = 500
                clock.now += 61  # expired, and the refetch fails
                assert (await check(v, token())).user == "alice"  # the known key still works
                assert await refused(v, token(KEY_B, "b")) == (4503, "auth keys unavailable")
                assert server.requests == 2
            finally:
                await v.aclose()

    arun(main())


def test_key_selection_rules(arun):
    async def main():
        async with Jwks(jwk(KEY_A, "a"), jwk(KEY_EC, "e", alg="ES256")) as server:
            v = verifier(server.url, algorithms=["RS256", "ES256"])
            try:
                assert (await check(v, token(KEY_EC, "e", alg="ES256"))).user == "alice"
                # A key published with alg ES256 verifies nothing else.
                assert await refused(v, token(KEY_A, "e")) == (4401, "algorithm not allowed")
                # Two keys: a token must say which one.
                assert await refused(v, token(kid=None)) == (4401, "unknown key id")
            finally:
                await v.aclose()
        async with Jwks(jwk(KEY_A, "only")) as server:
            v = verifier(server.url)
            try:
                # One key in the set: a token without kid uses it (many small IdPs).
                assert (await check(v, token(kid=None))).user == "alice"
            finally:
                await v.aclose()
        bad_set = [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, {"kty": "RSA", "kid": "x"}]
        async with Jwks(*bad_set) as server:
            v = verifier(server.url)
            try:
                # No usable key (symmetric keys are never taken from a JWKS): unavailable.
                assert await refused(v, token()) == (4503, "auth keys unavailable")
            finally:
                await v.aclose()

    arun(main())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jwks_url": "https://idp.example/jwks", "secret": "s" * 40}, "only one of"),
        ({"jwks_url": "ftp://idp.example/jwks"}, "http(s) URL"),
        ({"jwks_url": "https://idp.example/jwks", "algorithms": ["HS256"]}, "HS256"),
        ({"jwks_url": "https://idp.example/jwks", "jwks_max_age": 0}, "jwks_max_age"),
        ({"jwks_url": "https://idp.example/jwks", "jwks_timeout": "3"}, "jwks_timeout"),
    ],
)
def test_jwks_option_errors(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_verifier("jwt", options)


def test_through_the_gateway_4503_then_ok(arun):
    """A native client sees the verifier's answers as close codes."""

    async def main():
        async with Jwks(jwk(KEY_A, "a")) as server:
            server.status = 502
            options = {"jwks_url": server.url, "jwks_min_interval": 0}
            async with running_gateway(verifier="jwt", verifier_options=options) as gw:
                async with connect(url(gw)) as ws:
                    await ws.send(json.dumps(auth(token())))
                    reply = json.loads(await ws.recv())
                    assert reply["code"] == 4503
                server.status = 200
                async with connect(url(gw)) as ws:
                    await ws.send(json.dumps(auth(token())))
                    assert json.loads(await ws.recv())["type"] == "auth_ok"

    arun(main())
