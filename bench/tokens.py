"""Standalone copy of uvgate's HMAC token format (``gateway/tokens.py``).

Kept here so the load generator runs against any server without importing the gateway.
``tests/bench/test_bench.py`` checks that both produce byte-identical tokens.

Format: ``v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "v1." + claims_b64))>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

_PREFIX_B = b"v1."


def _b64e(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def issue_token(
    secret: str | bytes, sub: str, ttl: float = 3600, *, now: float | None = None
) -> str:
    """Sign a token for user ``sub`` valid for ``ttl`` seconds (same bytes as gateway.tokens)."""
    if not sub:
        raise ValueError("sub must be a non-empty string")
    key = secret.encode() if isinstance(secret, str) else secret
    issued = int(time.time() if now is None else now)
    claims = {"sub": sub, "iat": issued, "exp": issued + int(ttl)}
    # Compact separators and raw UTF-8, exactly what orjson.dumps emits for these claims.
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    body = _PREFIX_B + _b64e(payload)
    sig = _b64e(hmac.digest(key, body, hashlib.sha256))
    return (body + b"." + sig).decode()
