"""HMAC-signed expiring tokens: what ``uvgate token`` issues and the default verifier checks.

Format (ASCII, URL-safe, no padding)::

    v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "v1." + claims_b64))>

Claims: ``sub`` (user id, required), ``exp`` (unix seconds, required), ``iat``,
optional ``grp`` (list of groups to join) and ``info`` (object). The format is
deliberately smaller than a JWT: one HMAC and one JSON decode per connection,
which keeps first-message auth inside the per-connection CPU budget.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

PREFIX = "v1."
_PREFIX_B = PREFIX.encode()


class TokenError(ValueError):
    """The token is malformed, forged or expired; ``reason`` is safe to show the peer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# base64url straight through binascii: the base64 module's urlsafe helpers add
# two Python frames and type checks per call, and this runs on every connection.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_b2a = binascii.b2a_base64
# RFC 2104 2: SHA-256's block is 64 bytes; the key is XORed with 0x36 and 0x5C.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_a2b = binascii.a2b_base64


def _b64e(raw: bytes) -> bytes:
    return _b2a(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _b64d(text: bytes) -> bytes:
    return _a2b(text.translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4))


class TokenKey:
    """A secret prepared once: SHA-256 states that have absorbed the padded key.

    HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) (RFC 2104 2). Both key blocks are
    hashed here, once; a token then costs two state copies, two updates and two
    digests, all C calls (``hmac.HMAC.copy`` adds three Python frames per token, and
    OpenSSL's key set-up is two SHA-256 blocks). ``hmac.digest`` is the reference the
    tests compare it with.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def mac(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _mac(secret: str | bytes | TokenKey, body: bytes) -> bytes:
    if isinstance(secret, TokenKey):
        return secret.mac(body)
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(key, body, hashlib.sha256)


def issue_token(
    secret: str | bytes,
    sub: str,
    ttl: float = 3600,
    *,
    groups: Iterable[str] = (),
    info: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Sign a token for user ``sub`` valid for ``ttl`` seconds (a negative ``ttl`` makes an
    expired one, for tests; ``uvgate token`` refuses it)."""
    if not sub:
        raise ValueError("sub must be a non-empty string")
    if not secret:
        # Anyone can compute an HMAC with an empty key: such a token proves nothing.
        raise ValueError("secret must not be empty")
    key = secret.encode() if isinstance(secret, str) else secret
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + int(ttl)}
    grp = list(groups)
    if grp:
        claims["grp"] = grp
    if info:
        claims["info"] = dict(info)
    body = _PREFIX_B + _b64e(orjson.dumps(claims))
    sig = _b64e(hmac.digest(key, body, hashlib.sha256))
    return (body + b"." + sig).decode()


def verify_token(
    secret: str | bytes | TokenKey, token: str, *, now: float | None = None, leeway: float = 0
) -> dict[str, Any]:
    """Return the claims of a valid token, else raise ``TokenError``.

    Pass a ``TokenKey`` when verifying many tokens with one secret.
    """
    raw = token.encode("ascii", "replace")
    if not raw.startswith(_PREFIX_B):
        raise TokenError("malformed token")
    body, dot, sig = raw.rpartition(b".")
    if not dot or len(body) <= len(_PREFIX_B):
        raise TokenError("malformed token")
    expected = _b64e(_mac(secret, body))
    if not hmac.compare_digest(expected, sig):
        raise TokenError("bad signature")
    try:
        claims = orjson.loads(_b64d(body[len(_PREFIX_B) :]))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise TokenError("malformed token") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed token")
    sub, exp = claims.get("sub"), claims.get("exp")
    if not isinstance(sub, str) or not sub or not isinstance(exp, int):
        raise TokenError("malformed claims")
    if exp + leeway <= (time.time() if now is None else now):
        raise TokenError("token expired")
    return claims
