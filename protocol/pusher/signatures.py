"""HMAC-SHA256 signatures of the Pusher protocol (pusher-protocol.md "Signatures").

All signatures are lower-case hex HMAC-SHA256 keyed with the app secret. Verification
compares the *whole* ``"{app_key}:{hex}"`` string with ``hmac.compare_digest``, so the
time taken does not depend on how much of the key prefix or of the digest matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence

_SOCKET_ID_RE = re.compile(r"[0-9]+\.[0-9]+")  # ASCII only: \d also matches "٣"

QueryParams = Mapping[str, "str | Sequence[str]"] | Iterable[tuple[str, str]]


def _b(s: str) -> bytes:
    # surrogatepass: never raise on odd input; it simply will not match.
    return s.encode("utf-8", "surrogatepass")


def sign(secret: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of ``string_to_sign`` under ``secret``."""
    return hmac.digest(_b(secret), _b(string_to_sign), "sha256").hex()


def sign_bytes(secret: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 of raw bytes (webhook bodies)."""
    return hmac.digest(_b(secret), payload, "sha256").hex()


def constant_time_equals(a: str, b: str) -> bool:
    """``hmac.compare_digest`` for any str (it refuses non-ASCII str by itself)."""
    return hmac.compare_digest(_b(a), _b(b))


def is_valid_socket_id(socket_id: object) -> bool:
    """``^\\d+\\.\\d+$`` (the server libraries refuse anything else)."""
    return isinstance(socket_id, str) and _SOCKET_ID_RE.fullmatch(socket_id) is not None


# -- channel and user authentication -------------------------------------------------------


def channel_string_to_sign(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """``socket_id:channel`` (private/encrypted) or ``socket_id:channel:channel_data``
    (presence, with ``channel_data`` exactly as received)."""
    if channel_data is None:
        return f"{socket_id}:{channel}"
    return f"{socket_id}:{channel}:{channel_data}"


def user_string_to_sign(socket_id: str, user_data: str) -> str:
    """``socket_id::user::user_data`` (``pusher:signin``)."""
    return f"{socket_id}::user::{user_data}"


def auth_token(app_key: str, secret: str, string_to_sign: str) -> str:
    """The ``auth`` field value: ``"{app_key}:{hex}"``."""
    return f"{app_key}:{sign(secret, string_to_sign)}"


def sign_channel(
    app_key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str:
    """``auth`` for a private / encrypted / presence subscription (what an app's auth
    endpoint returns; used by tests and the bench)."""
    return auth_token(app_key, secret, channel_string_to_sign(socket_id, channel, channel_data))


def sign_user(app_key: str, secret: str, socket_id: str, user_data: str) -> str:
    """``auth`` for ``pusher:signin``."""
    return auth_token(app_key, secret, user_string_to_sign(socket_id, user_data))


def verify_auth(auth: object, app_key: str, secret: str, string_to_sign: str) -> bool:
    """Constant-time check of an ``auth`` field against the expected token."""
    if not isinstance(auth, str):
        return False
    return constant_time_equals(auth, auth_token(app_key, secret, string_to_sign))


def verify_channel_auth(
    auth: object,
    app_key: str,
    secret: str,
    socket_id: str,
    channel: str,
    channel_data: str | None = None,
) -> bool:
    return verify_auth(
        auth, app_key, secret, channel_string_to_sign(socket_id, channel, channel_data)
    )


def verify_user_auth(
    auth: object, app_key: str, secret: str, socket_id: str, user_data: str
) -> bool:
    return verify_auth(auth, app_key, secret, user_string_to_sign(socket_id, user_data))


# -- HTTP API ------------------------------------------------------------------------------


def iter_pairs(params: QueryParams) -> Iterable[tuple[str, str]]:
    if isinstance(params, Mapping):
        for key, value in params.items():
            if isinstance(value, str):
                yield key, value
            else:
                for item in value:
                    yield key, item
    else:
        yield from params


def canonical_query(params: QueryParams) -> str:
    """Query string of the HTTP API string to sign: every param but ``auth_signature``,
    keys lower-cased and sorted, values unescaped, repeated keys joined with ","."""
    grouped: dict[str, list[str]] = {}
    for key, value in iter_pairs(params):
        lower = key.lower()
        if lower == "auth_signature":
            continue
        grouped.setdefault(lower, []).append(value)
    return "&".join(f"{key}={','.join(grouped[key])}" for key in sorted(grouped))


def api_string_to_sign(method: str, path: str, params: QueryParams) -> str:
    """``"{METHOD}\\n{path}\\n{canonical query}"``."""
    return f"{method.upper()}\n{path}\n{canonical_query(params)}"


def sign_api_request(secret: str, method: str, path: str, params: QueryParams) -> str:
    """Hex ``auth_signature`` for an HTTP API request."""
    return sign(secret, api_string_to_sign(method, path, params))


def body_md5(body: bytes) -> str:
    """Hex MD5 of the raw request body (a checksum, not a security primitive)."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


# -- webhooks ------------------------------------------------------------------------------


def webhook_signature(secret: str, body: bytes) -> str:
    """``X-Pusher-Signature``: hex HMAC-SHA256 of the raw body."""
    return sign_bytes(secret, body)


def verify_webhook_signature(secret: str, body: bytes, signature: object) -> bool:
    if not isinstance(signature, str):
        return False
    return constant_time_equals(signature, webhook_signature(secret, body))
