"""The jwt verifier: HS256 and RS256 (keys generated here), claims, algorithm safety."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.verifiers import AuthFailed, ConnectionInfo, Identity, JwtVerifier, load_verifier

SECRET = "jwt-test-secret-" + "s" * 32
CONN = ConnectionInfo("c9-1", "198.51.100.2", 40000, "/ws")


def _pem_public(private) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUB = _pem_public(RSA_KEY)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def auth(token):
    return {"type": "auth", "token": token}


def claims(**extra):
    now = int(time.time())
    base = {"sub": "alice", "iat": now, "exp": now + 60}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def hs(payload, secret=SECRET, alg="HS256"):
    return jwt.encode(payload, secret, algorithm=alg)


def rs(payload, key=RSA_KEY, alg="RS256"):
    return jwt.encode(payload, key, algorithm=alg)


def refused(verifier, token):
    with pytest.raises(AuthFailed) as info:
        verifier.verify(auth(token), CONN)
    return info.value.code, info.value.reason


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header, payload, key: bytes | None):
    """A JWT built by hand, to forge what PyJWT refuses to produce."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    sig = b"" if key is None else hmac.digest(key, signing_input.encode(), hashlib.sha256)
    return signing_input + "." + b64(sig)


# --- valid tokens ------------------------------------------------------------------


def test_hs256_valid():
    v = JwtVerifier(secret=SECRET)
    assert v.name == "jwt" and v.requires_message is True
    assert v.algorithms == ["HS256"]
    assert v.verify(auth(hs(claims())), CONN) == Identity("alice")
    token = hs(claims(groups=["room-1", "room-2"]))
    assert v.verify(auth(token), CONN) == Identity("alice", None, ("room-1", "room-2"))


def test_hs512_when_allowed():
    long_secret = "x" * 64
    v = JwtVerifier(secret=long_secret, algorithms=["HS256", "HS512"])
    assert v.verify(auth(hs(claims(), long_secret, "HS512")), CONN).user == "alice"


def test_rs256_with_inline_key_and_key_file(tmp_path):
    v = JwtVerifier(public_key=RSA_PUB)
    assert v.algorithms == ["RS256"]
    assert v.verify(auth(rs(claims(sub="bob"))), CONN) == Identity("bob")
    path = tmp_path / "pub.pem"
    path.write_text(RSA_PUB)
    vf = load_verifier("jwt", {"public_key_file": str(path)})
    assert vf.verify(auth(rs(claims(sub="carol"))), CONN) == Identity("carol")


def test_ps256_and_ec_and_eddsa_keys():
    v = JwtVerifier(public_key=RSA_PUB, algorithms=["RS256", "PS256"])
    assert v.verify(auth(rs(claims(), alg="PS256")), CONN).user == "alice"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ve = JwtVerifier(public_key=_pem_public(ec_key))
    assert ve.algorithms == ["ES256"]
    assert ve.verify(auth(jwt.encode(claims(), ec_key, algorithm="ES256")), CONN).user == "alice"
    ed_key = ed25519.Ed25519PrivateKey.generate()
    vd = JwtVerifier(public_key=_pem_public(ed_key))
    assert vd.algorithms == ["EdDSA"]
    assert vd.verify(auth(jwt.encode(claims(), ed_key, algorithm="EdDSA")), CONN).user == "alice"


def test_user_claim_and_integer_ids():
    v = JwtVerifier(secret=SECRET, user_claim="uid")
    assert v.verify(auth(hs(claims(uid=42))), CONN) == Identity("42")
    assert v.verify(auth(hs(claims(uid="u-7"))), CONN) == Identity("u-7")
    assert refused(v, hs(claims())) == (4401, "token has no user")
    assert refused(v, hs(claims(uid=True))) == (4401, "token has no user")
    assert refused(JwtVerifier(secret=SECRET), hs(claims(sub=None))) == (4401, "token has no user")
    # RFC 7519 4.1.2: sub is a StringOrURI; PyJWT refuses an integer sub.
    assert refused(JwtVerifier(secret=SECRET), hs(claims(sub=42))) == (4401, "malformed claims")


def test_groups_claim_must_be_a_list_of_strings():
    v = JwtVerifier(secret=SECRET)
    assert refused(v, hs(claims(groups="room"))) == (4401, "malformed claims")
    assert refused(v, hs(claims(groups=["a", 1]))) == (4401, "malformed claims")


# --- time claims -------------------------------------------------------------------


def test_expired_and_leeway():
    now = int(time.time())
    token = hs(claims(exp=now - 10, iat=now - 100))
    assert refused(JwtVerifier(secret=SECRET), token) == (4401, "token expired")
    assert JwtVerifier(secret=SECRET, leeway=60).verify(auth(token), CONN).user == "alice"


def test_not_yet_valid_nbf_and_iat():
    now = int(time.time())
    v = JwtVerifier(secret=SECRET)
    assert refused(v, hs(claims(nbf=now + 600))) == (4401, "token not yet valid")
    assert refused(v, hs(claims(iat=now + 600))) == (4401, "token not yet valid")
    relaxed = JwtVerifier(secret=SECRET, leeway=900)
    assert relaxed.verify(auth(hs(claims(nbf=now + 600))), CONN).user == "alice"


def test_require():
    no_exp = hs(claims(exp=None))
    assert refused(JwtVerifier(secret=SECRET), no_exp) == (4401, "missing required claim")
    assert JwtVerifier(secret=SECRET, require=[]).verify(auth(no_exp), CONN).user == "alice"
    assert JwtVerifier(secret=SECRET, require="exp").require == ["exp"]
    v = JwtVerifier(secret=SECRET, require=["exp", "jti"])
    assert refused(v, hs(claims())) == (4401, "missing required claim")
    assert v.verify(auth(hs(claims(jti="j1"))), CONN).user == "alice"


# --- audience / issuer -------------------------------------------------------------


def test_audience():
    v = JwtVerifier(secret=SECRET, audience="uvgate")
    assert v.verify(auth(hs(claims(aud="uvgate"))), CONN).user == "alice"
    assert v.verify(auth(hs(claims(aud=["other", "uvgate"]))), CONN).user == "alice"
    assert refused(v, hs(claims(aud="other"))) == (4403, "wrong audience")
    assert refused(v, hs(claims())) == (4401, "missing required claim")
    many = JwtVerifier(secret=SECRET, audience=["a", "b"])
    assert many.verify(auth(hs(claims(aud="b"))), CONN).user == "alice"
    # No audience configured: a token meant for some audience is not for us.
    assert refused(JwtVerifier(secret=SECRET), hs(claims(aud="x"))) == (4403, "wrong audience")


def test_issuer():
    v = JwtVerifier(public_key=RSA_PUB, issuer="https://id.example")
    assert v.verify(auth(rs(claims(iss="https://id.example"))), CONN).user == "alice"
    assert refused(v, rs(claims(iss="https://evil.example"))) == (4403, "wrong issuer")
    assert refused(v, rs(claims())) == (4401, "missing required claim")
    many = JwtVerifier(secret=SECRET, issuer=["i1", "i2"])
    assert many.verify(auth(hs(claims(iss="i2"))), CONN).user == "alice"
    assert refused(many, hs(claims(iss="i3"))) == (4403, "wrong issuer")


# --- signatures and algorithms -----------------------------------------------------


def test_bad_signature():
    assert refused(JwtVerifier(secret=SECRET), hs(claims(), "another-" + SECRET)) == (
        4401,
        "bad signature",
    )
    assert refused(JwtVerifier(public_key=RSA_PUB), rs(claims(), OTHER_RSA_KEY)) == (
        4401,
        "bad signature",
    )
    head, _, sig = hs(claims()).split(".")
    forged_payload = b64(json.dumps(claims(sub="root")).encode())
    assert refused(JwtVerifier(secret=SECRET), f"{head}.{forged_payload}.{sig}") == (
        4401,
        "bad signature",
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("abc", "malformed token"),
        ("a.b.c", "malformed token"),
        ("x" * 50, "malformed token"),
        (".....", "malformed token"),
        (b64(b"[]") + ".e30.", "malformed token"),  # header not an object
        ("e30.e30.", "algorithm not allowed"),  # header {} has no alg
        ("", "missing token"),
    ],
)
def test_malformed(token, reason):
    assert refused(JwtVerifier(secret=SECRET), token) == (4401, reason)


def test_alg_none_token_is_refused():
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert refused(JwtVerifier(secret=SECRET), unsigned) == (4401, "algorithm not allowed")
    assert refused(JwtVerifier(public_key=RSA_PUB), unsigned) == (4401, "algorithm not allowed")
    for alg in ("none", "None", "NONE"):
        crafted = handmade({"alg": alg, "typ": "JWT"}, claims(), None)
        assert refused(JwtVerifier(secret=SECRET), crafted)[0] == 4401


@pytest.mark.parametrize("algs", [["none"], ["NONE"], ["HS256", "none"]])
def test_alg_none_cannot_be_configured(algs):
    with pytest.raises(ValueError, match="'none' is never allowed"):
        JwtVerifier(secret=SECRET, algorithms=algs)


def test_alg_confusion_hs256_signed_with_the_public_key_is_refused():
    # The classic attack: take the server's public key PEM as an HMAC secret.
    forged = handmade({"alg": "HS256", "typ": "JWT"}, claims(sub="root"), RSA_PUB.encode())
    v = JwtVerifier(public_key=RSA_PUB)
    assert refused(v, forged) == (4401, "algorithm not allowed")
    # And the configuration that would make it possible is refused at load time.
    with pytest.raises(ValueError, match="algorithm confusion"):
        JwtVerifier(public_key=RSA_PUB, algorithms=["RS256", "HS256"])


def test_asymmetric_algorithm_with_a_secret_is_refused():
    with pytest.raises(ValueError, match="'RS256' cannot be used with a secret"):
        JwtVerifier(secret=SECRET, algorithms=["RS256"])


def test_algorithm_must_fit_the_key_kind():
    with pytest.raises(ValueError, match="'ES256' cannot be used with this public key"):
        JwtVerifier(public_key=RSA_PUB, algorithms=["ES256"])
    rs_only = JwtVerifier(public_key=RSA_PUB)
    assert refused(rs_only, rs(claims(), alg="RS512")) == (4401, "algorithm not allowed")


# --- configuration errors ----------------------------------------------------------


def test_key_strength_is_checked_at_load_time():
    with pytest.raises(ValueError, match=r">= 32 bytes for HS256 \(RFC 7518 3.2\)"):
        JwtVerifier(secret="short")
    with pytest.raises(ValueError, match=">= 64 bytes for HS512"):
        JwtVerifier(secret="x" * 40, algorithms=["HS512"])
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="RSA key must be >= 2048 bits"):
        JwtVerifier(public_key=_pem_public(weak))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs option 'secret', 'public_key', 'public_key_file' or 'jwks_url'"),
        ({"secret": SECRET, "public_key": RSA_PUB}, "only one of 'secret', 'public_key'"),
        ({"public_key": "not a pem"}, "option 'public_key' is not a PEM public key"),
        ({"public_key_file": "/nonexistent.pem"}, "cannot read public_key_file"),
        ({"public_key_file": 3}, "option 'public_key_file' must be a path"),
        ({"secret": SECRET, "algorithms": []}, None),
        ({"secret": SECRET, "algorithms": [1]}, "option 'algorithms' must be"),
        ({"secret": SECRET, "audience": 5}, "option 'audience' must be"),
        ({"secret": SECRET, "issuer": [""]}, "option 'issuer' must be"),
        ({"secret": SECRET, "leeway": -3}, "option 'leeway' must be >= 0"),
        ({"secret": SECRET, "user_claim": ""}, "option 'user_claim' must be"),
        ({"secret": SECRET, "require": [3]}, "option 'require' must be"),
    ],
)
def test_option_errors(options, message):
    if message is None:  # an empty allow-list would allow nothing: refuse it too
        with pytest.raises(ValueError, match="option 'algorithms' must not be empty"):
            JwtVerifier(**options)
        return
    with pytest.raises(ValueError, match=message) as info:
        JwtVerifier(**options)
    assert SECRET not in str(info.value)


def test_private_key_pem_is_not_a_public_key():
    private_pem = RSA_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ValueError, match="not a PEM public key"):
        JwtVerifier(public_key=private_pem)
