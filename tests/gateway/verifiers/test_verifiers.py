"""The none, static and hmac verifiers, AuthFailed, and the loader."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import inspect
import json

import orjson
import pytest

import gateway.verifiers as verifiers
from gateway.tokens import issue_token
from gateway.verifiers import (
    BUILTIN_VERIFIERS,
    AnonymousVerifier,
    AuthFailed,
    ConnectionInfo,
    FunctionVerifier,
    HmacVerifier,
    HttpVerifier,
    Identity,
    JwtVerifier,
    StaticVerifier,
    clip_reason,
    load_verifier,
)
from protocol import closecodes

SECRET = "test-secret-" + "k" * 32
CONN = ConnectionInfo("c1-42", "203.0.113.7", 51234, "/app/key", {"v": "1"})


def auth(token):
    return {"type": "auth", "token": token}


def refused(verifier, message, conn=CONN):
    with pytest.raises(AuthFailed) as info:
        verifier.verify(message, conn)
    return info.value.code, info.value.reason


# --- AuthFailed / clip_reason ------------------------------------------------------


def test_auth_failed_defaults_and_repr():
    exc = AuthFailed()
    assert (exc.code, exc.reason) == (closecodes.AUTH_FAILED, "authentication failed")
    assert repr(AuthFailed(4403, "no")) == "AuthFailed(4403, 'no')"
    assert verifiers.AUTH_UNAVAILABLE == 4503


def test_auth_failed_clips_reason_to_100_bytes_on_a_character_boundary():
    assert AuthFailed(4401, "x" * 300).reason == "x" * 100
    reason = AuthFailed(4401, "é" * 80).reason  # 2 bytes each
    assert reason == "é" * 50
    odd = AuthFailed(4401, "a" + "€" * 40).reason  # 1 + 3n bytes: cut inside a char
    assert len(odd.encode()) <= 100 and odd == "a" + "€" * 33
    assert clip_reason("short") == "short"
    assert clip_reason("abcdef", 3) == "abc"


# --- none --------------------------------------------------------------------------


def test_none_allows_everyone_without_a_message():
    v = AnonymousVerifier()
    assert v.name == "none" and v.requires_message is False
    assert v.verify({}, CONN) == Identity("anon-c1-42")
    assert v.verify({"type": "whatever", "token": 1}, CONN) == Identity("anon-c1-42")


def test_none_with_a_fixed_user():
    assert AnonymousVerifier(user="guest").verify({}, CONN) == Identity("guest")
    with pytest.raises(ValueError, match="option 'user' must be a non-empty string"):
        AnonymousVerifier(user="")


def test_every_other_builtin_requires_a_message():
    for name, cls in BUILTIN_VERIFIERS.items():
        assert cls.name == name
        assert cls.requires_message is (name != "none")


# --- static ------------------------------------------------------------------------

TABLE = {
    "tok-alice": "alice",
    "tok-bot": {"user": "bot", "info": {"role": "bot"}, "groups": ["ops", "all"]},
}


def test_static_inline_tokens():
    v = StaticVerifier(tokens=TABLE)
    assert len(v) == 2
    assert v.verify(auth("tok-alice"), CONN) == Identity("alice")
    assert v.verify(auth("tok-bot"), CONN) == Identity("bot", {"role": "bot"}, ("ops", "all"))


def test_static_stores_digests_not_tokens():
    v = StaticVerifier(tokens=TABLE)
    assert "tok-alice" not in repr(vars(v))
    assert hashlib.sha256(b"tok-alice").digest() in v._table


def test_static_failures():
    v = StaticVerifier(tokens=TABLE)
    assert refused(v, auth("tok-alicE")) == (4401, "unknown token")
    assert refused(v, auth("tok-alice" + "x")) == (4401, "unknown token")
    assert refused(v, auth("")) == (4401, "missing token")
    assert refused(v, {"type": "auth"}) == (4401, "missing token")
    assert refused(v, {"type": "auth", "token": 123}) == (4401, "missing token")
    assert refused(v, {"type": "hello", "token": "tok-alice"}) == (
        4401,
        "first message must be auth",
    )


def test_static_tokens_file_toml_and_json(tmp_path):
    toml = tmp_path / "tokens.toml"
    toml.write_text(
        '"tok-carol" = "carol"\n'
        '"tok-dave" = { user = "dave", groups = ["g1"], info = { tier = 2 } }\n'
    )
    v = StaticVerifier(tokens_file=str(toml))
    assert v.verify(auth("tok-carol"), CONN) == Identity("carol")
    assert v.verify(auth("tok-dave"), CONN) == Identity("dave", {"tier": 2}, ("g1",))

    js = tmp_path / "tokens.json"
    js.write_text(json.dumps({"tok-erin": {"user": "erin"}}))
    both = StaticVerifier(tokens=TABLE, tokens_file=js)
    assert len(both) == 3
    assert both.verify(auth("tok-erin"), CONN) == Identity("erin")
    assert both.verify(auth("tok-alice"), CONN) == Identity("alice")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs option 'tokens' or 'tokens_file'"),
        ({"tokens": ["a"]}, "option 'tokens' must be a table"),
        ({"tokens": {"": "u"}}, "entry #1: the token must be a non-empty string"),
        ({"tokens": {"secret-tok": ""}}, "entry #1: expected a user id"),
        ({"tokens": {"a": "u", "secret-tok": 5}}, "entry #2: expected a user id"),
        ({"tokens": {"secret-tok": {"user": "u", "x": 1}}}, "unknown key\\(s\\) x"),
        ({"tokens": {"secret-tok": {"info": {}}}}, "'user' must be a non-empty string"),
        ({"tokens": {"secret-tok": {"user": "u", "info": 3}}}, "'info' must be a table"),
        ({"tokens": {"secret-tok": {"user": "u", "groups": "g"}}}, "'groups' must be a list"),
        ({"tokens_file": 5}, "option 'tokens_file' must be a path"),
        ({"tokens_file": "/nonexistent/tokens.json"}, "cannot read tokens_file"),
    ],
)
def test_static_option_errors(options, message):
    with pytest.raises(ValueError, match=message) as info:
        StaticVerifier(**options)
    assert "secret-tok" not in str(info.value)


def test_static_file_errors_do_not_show_tokens(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('"secret-tok" = \n')
    with pytest.raises(ValueError, match="cannot parse tokens_file") as info:
        StaticVerifier(tokens_file=bad)
    assert "secret-tok" not in str(info.value)
    listing = tmp_path / "list.json"
    listing.write_text('["secret-tok"]')
    with pytest.raises(ValueError, match="must hold a table of tokens"):
        StaticVerifier(tokens_file=listing)


def test_static_duplicate_token_across_sources_is_an_error(tmp_path):
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"tok-alice": "mallory"}))
    with pytest.raises(ValueError, match="duplicate token"):
        StaticVerifier(tokens=TABLE, tokens_file=js)


# --- hmac --------------------------------------------------------------------------


def forge(claims, secret=SECRET):
    """A correctly signed v1 token with arbitrary claims (bypasses issue_token's checks)."""
    body = b"v1." + base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.digest(secret.encode(), body, "sha256")).rstrip(b"=")
    return (body + b"." + sig).decode()


def test_hmac_valid_token():
    v = HmacVerifier(secret=SECRET)
    assert v.name == "hmac" and v.requires_message is True
    token = issue_token(SECRET, "alice", 60, groups=["room-1", "room-2"], info={"n": 1})
    assert v.verify(auth(token), CONN) == Identity("alice", {"n": 1}, ("room-1", "room-2"))
    assert v.verify(auth(issue_token(SECRET, "bob")), CONN) == Identity("bob")
    # sync: a plain Identity, not an awaitable
    assert not inspect.isawaitable(v.verify(auth(token), CONN))


def test_hmac_expired_and_leeway():
    token = issue_token(SECRET, "alice", 10, now=1_000)  # exp 1010, long past
    assert refused(HmacVerifier(secret=SECRET), auth(token)) == (4401, "token expired")
    recent = issue_token(SECRET, "alice", -5)  # expired 5 s ago
    assert refused(HmacVerifier(secret=SECRET), auth(recent)) == (4401, "token expired")
    assert HmacVerifier(secret=SECRET, leeway=30).verify(auth(recent), CONN).user == "alice"


def test_hmac_bad_signature():
    v = HmacVerifier(secret=SECRET)
    assert refused(v, auth(issue_token("other-secret", "alice"))) == (4401, "bad signature")
    token = issue_token(SECRET, "alice")
    body, _, sig = token.rpartition(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert refused(v, auth(body + "." + flipped)) == (4401, "bad signature")
    # Changing the claims keeps the old signature: refused too.
    other = issue_token(SECRET, "mallory").rpartition(".")[0]
    assert refused(v, auth(other + "." + sig)) == (4401, "bad signature")


@pytest.mark.parametrize("token", ["garbage", "v1.", "v1.abc", "v2.abc.def", "v1..sig", "é"])
def test_hmac_malformed_token(token):
    assert refused(HmacVerifier(secret=SECRET), auth(token)) == (4401, "malformed token")


def test_hmac_signed_but_not_json_is_malformed():
    body = b"v1." + base64.urlsafe_b64encode(b"not json").rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.digest(SECRET.encode(), body, "sha256")).rstrip(b"=")
    token = (body + b"." + sig).decode()
    assert refused(HmacVerifier(secret=SECRET), auth(token)) == (4401, "malformed token")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 2**40},  # no sub
        {"sub": "a"},  # no exp
        {"sub": "", "exp": 2**40},
        {"sub": "a", "exp": 2**40, "grp": "room"},
        {"sub": "a", "exp": 2**40, "grp": ["ok", 3]},
        {"sub": "a", "exp": 2**40, "info": ["x"]},
    ],
)
def test_hmac_malformed_claims(claims):
    assert refused(HmacVerifier(secret=SECRET), auth(forge(claims))) == (4401, "malformed claims")


def test_hmac_first_message_checks():
    v = HmacVerifier(secret=SECRET)
    assert refused(v, {"type": "subscribe"}) == (4401, "first message must be auth")
    assert refused(v, {"type": "auth", "token": None}) == (4401, "missing token")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret": ""}, "option 'secret' must be a non-empty string, got str"),
        ({"secret": 1234}, "option 'secret' must be a non-empty string, got int"),
        ({"secret": "s", "leeway": -1}, "option 'leeway' must be >= 0"),
        ({"secret": "s", "leeway": "5"}, "option 'leeway' must be a number"),
        ({"secret": "s", "leeway": True}, "option 'leeway' must be a number"),
        ({"secret": "s", "leeway": float("nan")}, "option 'leeway' must be a number"),
    ],
)
def test_hmac_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        HmacVerifier(**options)


# --- loader ------------------------------------------------------------------------


def test_builtin_registry():
    expected = {
        "none": AnonymousVerifier,
        "static": StaticVerifier,
        "hmac": HmacVerifier,
        "jwt": JwtVerifier,
        "http": HttpVerifier,
    }
    assert dict(BUILTIN_VERIFIERS) == expected
    assert verifiers.DEFAULT_VERIFIER == "hmac"
    for name in verifiers.__all__:
        assert hasattr(verifiers, name), name


def test_load_builtins_by_name():
    assert isinstance(load_verifier("none", {}), AnonymousVerifier)
    assert isinstance(load_verifier(" none ", None), AnonymousVerifier)
    assert load_verifier("none", {"user": "guest"}).verify({}, CONN) == Identity("guest")
    assert isinstance(load_verifier("static", {"tokens": TABLE}), StaticVerifier)
    hv = load_verifier("hmac", {"secret": SECRET, "leeway": 2})
    assert isinstance(hv, HmacVerifier) and hv.leeway == 2.0
    assert hv.verify(auth(issue_token(SECRET, "zed")), CONN) == Identity("zed")
    assert isinstance(load_verifier("jwt", {"secret": SECRET}), JwtVerifier)
    assert isinstance(load_verifier("http", {"url": "http://127.0.0.1:1/auth"}), HttpVerifier)


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("hmac", {}, "^verifier 'hmac' needs option 'secret'$"),
        ("http", {}, "^verifier 'http' needs option 'url'$"),
        ("hmac", {"secret": "s", "ttl": 3}, "verifier 'hmac' has no option 'ttl' \\(options: "),
        ("none", {"token": "x"}, "verifier 'none' has no option 'token' \\(options: user\\)"),
        (
            "jwt",
            {},
            "verifier 'jwt' needs option 'secret', 'public_key', 'public_key_file' or 'jwks_url'",
        ),
        ("static", {}, "verifier 'static' needs option 'tokens' or 'tokens_file'"),
        ("nope", {}, "unknown verifier 'nope'; built-in: none, static, hmac, jwt, http$"),
        ("tests.custom_verifier.PrefixVerifier", {}, "use 'package.module:Name'"),
        ("", {}, "non-empty string"),
        (":Thing", {}, "expected 'package.module:Name'"),
        ("tests.custom_verifier:", {}, "expected 'package.module:Name'"),
        ("tests.no_such_module:X", {}, "cannot import 'tests.no_such_module'"),
        ("tests.custom_verifier:Missing", {}, "'tests.custom_verifier' has no 'Missing'"),
        ("tests.custom_verifier:PrefixVerifier", {}, "needs option 'prefix'"),
        ("tests.custom_verifier:PrefixVerifier", {"prefix": "p", "x": 1}, "no option 'x'"),
        ("tests.custom_verifier:Exploding", {}, "bad things"),
        ("tests.custom_verifier:verify_sync", {"a": 1}, "is a function and takes no options"),
        ("tests.custom_verifier:instance", {"a": 1}, "is an object and takes no options"),
        ("tests.custom_verifier:NOT_A_VERIFIER", {}, "has no verify\\(message, conn\\) method"),
        ("tests.custom_verifier:Slotted", {}, "needs a 'name' attribute"),
    ],
)
def test_loader_errors(spec, options, message):
    with pytest.raises(ValueError, match=message):
        load_verifier(spec, options)


def test_loader_option_names_must_be_strings():
    with pytest.raises(ValueError, match="option names must be strings"):
        load_verifier("none", {1: "x"})


def test_load_class_by_dotted_path():
    v = load_verifier("tests.custom_verifier:PrefixVerifier", {"prefix": "p-", "code": 4403})
    # The loader fills in what the gateway reads.
    assert v.name == "tests.custom_verifier:PrefixVerifier"
    assert v.requires_message is True
    assert v.verify(auth("p-joe"), CONN) == Identity("joe")
    assert refused(v, auth("q-joe")) == (4403, "wrong prefix")
    named = load_verifier("tests.custom_verifier:Named", {})
    assert named.name == "named"


def test_load_object_by_dotted_path():
    from tests import custom_verifier

    v = load_verifier("tests.custom_verifier:instance", {})
    assert v is custom_verifier.instance
    assert v.verify(auth("obj-kim"), CONN) == Identity("kim")


def test_load_sync_function():
    v = load_verifier("tests.custom_verifier:verify_sync", {})
    assert isinstance(v, FunctionVerifier)
    assert v.name == "tests.custom_verifier:verify_sync"
    assert v.requires_message is True
    assert v.verify(auth("t"), CONN) == Identity("sync-t")
    assert "verify_sync" in repr(v)


def test_load_async_function():
    v = load_verifier("tests.custom_verifier:verify_async", None)
    assert v.name == "tests.custom_verifier:verify_async"

    async def go():
        result = v.verify(auth("good"), CONN)
        assert inspect.isawaitable(result)
        assert await result == Identity("async-c1-42")
        with pytest.raises(AuthFailed) as info:
            await v.verify(auth("bad"), CONN)
        assert (info.value.code, info.value.reason) == (4403, "nope")
        await v.aclose()

    asyncio.run(go())
