"""What every Python peer shares: the CLI and uvgate's HMAC token check.

Imported by the peer scripts from their own directory (``python bench/peers/X.py``), so
each stays runnable without the bench package installed. The check is the same work
uvgate does per connection: one HMAC-SHA256, one base64 and one JSON decode.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import time

import orjson

_PREFIX = b"v1."
_ids = itertools.count(1)


class TokenError(ValueError):
    pass


def verify_token(key: bytes, token: str) -> str:
    """The token's user (``sub``) or ``TokenError``; same rules as gateway.tokens.verify_token."""
    raw = token.encode("ascii", "replace")
    if not raw.startswith(_PREFIX):
        raise TokenError("malformed token")
    body, dot, sig = raw.rpartition(b".")
    if not dot or len(body) <= len(_PREFIX):
        raise TokenError("malformed token")
    expected = base64.urlsafe_b64encode(hmac.digest(key, body, hashlib.sha256)).rstrip(b"=")
    if not hmac.compare_digest(expected, sig):
        raise TokenError("bad signature")
    b = body[len(_PREFIX) :]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(b + b"=" * (-len(b) % 4)))
    except ValueError:
        raise TokenError("malformed token") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed token")
    sub, exp = claims.get("sub"), claims.get("exp")
    if not isinstance(sub, str) or not sub or not isinstance(exp, int):
        raise TokenError("malformed claims")
    if exp <= time.time():
        raise TokenError("token expired")
    return sub


def authenticate(key: bytes, first_message: bytes | str) -> tuple[bytes, str | None]:
    """(reply, user) for the first message; user is None when the reply is the 4401 error."""
    try:
        msg = orjson.loads(first_message)
        if not isinstance(msg, dict) or msg.get("type") != "auth":
            raise TokenError("expected auth")
        token = msg.get("token")
        if not isinstance(token, str):
            raise TokenError("malformed token")
        user = verify_token(key, token)
    except (TokenError, orjson.JSONDecodeError) as exc:
        reason = exc.args[0] if isinstance(exc, TokenError) else "bad json"
        return orjson.dumps({"type": "error", "code": 4401, "reason": reason}), None
    return orjson.dumps({"type": "auth_ok", "id": f"c{next(_ids)}", "user": user}), user


def parse_args(description: str, apps: tuple[str, ...] = ("echo", "chat")) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--secret", default="bench-secret")
    ap.add_argument("--app", choices=apps, default="echo")
    ap.add_argument("--app-id", default="12345", help="Pusher app id (--app pusher)")
    ap.add_argument("--app-key", default="app-key", help="Pusher app key (--app pusher)")
    ap.add_argument("--app-secret", default="app-secret", help="Pusher app secret (--app pusher)")
    return ap.parse_args()


def ready(name: str, host: str, port: int, app: str) -> None:
    print(f"{name} listening on {host}:{port} app={app}", flush=True)
