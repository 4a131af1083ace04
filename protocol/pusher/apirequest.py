"""Authentication of HTTP API requests (pusher-protocol.md "HTTP API").

Every request to ``/apps/{app_id}/...`` is signed: ``auth_key``, ``auth_timestamp``,
``auth_version=1.0``, ``body_md5`` (with a body) and ``auth_signature`` in the query.
uvgate also enforces the +-600 s timestamp window that soketi and Reverb skip (so a
captured request cannot be replayed later) and compares signatures in constant time.

The gateway passes the *raw* request path (no query) and the query parsed with
``parse_query`` (values percent-decoded, blank values kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl

from .apps import App
from .errors import ApiError
from .signatures import (
    QueryParams,
    api_string_to_sign,
    body_md5,
    constant_time_equals,
    iter_pairs,
    sign,
)

DEFAULT_MAX_SKEW = 600.0  # seconds, both directions
_EMPTY_MD5 = body_md5(b"")
_AUTH_PARAMS = ("auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5")


def parse_query(raw_query: str | bytes) -> list[tuple[str, str]]:
    """The query string as decoded pairs, in order, blank values kept."""
    if isinstance(raw_query, bytes):
        raw_query = raw_query.decode("latin-1")
    return parse_qsl(raw_query, keep_blank_values=True)


def auth_key_of(query_params: QueryParams) -> str | None:
    """The ``auth_key`` parameter: finds the app for routes without ``/apps/{id}``.

    The official Python library (3.3.x) posts ``terminate_user_connections`` to
    ``/users/{id}/terminate_connections`` with no app id in the path (and signs that path).
    """
    for key, value in iter_pairs(query_params):
        if key.lower() == "auth_key":
            return value
    return None


def _auth_fields(params: QueryParams) -> tuple[list[tuple[str, str]], dict[str, str]]:
    pairs = list(iter_pairs(params))
    fields: dict[str, str] = {}
    for key, value in pairs:
        lower = key.lower()
        if lower in _AUTH_PARAMS:
            if lower in fields:
                raise ApiError(401, f"Duplicate {lower} parameter")
            fields[lower] = value
    return pairs, fields


def verify_api_request(
    method: str,
    path: str,
    query_params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
    body: bytes,
    app: App,
    now: float,
    *,
    max_skew: float = DEFAULT_MAX_SKEW,
) -> None:
    """Raise ``ApiError`` unless the request is correctly signed for ``app``.

    ``now``: wall-clock UNIX seconds (``time.time()``; the timestamp is wall time).
    401 for a missing parameter, a wrong ``auth_key``, ``auth_version`` other than 1.0, a
    timestamp outside ``now +- max_skew``, a ``body_md5`` that does not match the body, or a
    bad signature; 403 when the app is disabled (checked after authentication so the
    answer tells nothing to strangers).

    ``body_md5`` is required with a non-empty body. Without a body it may be absent, or be
    the MD5 of the empty body, which the official Python library sends on every GET.
    """
    pairs, fields = _auth_fields(query_params)
    for name in ("auth_key", "auth_timestamp", "auth_signature"):
        if name not in fields:
            raise ApiError(401, f"Missing {name}")
    if not constant_time_equals(fields["auth_key"], app.key):
        raise ApiError(401, "Invalid auth_key")
    if fields.get("auth_version") != "1.0":
        raise ApiError(401, "auth_version must be 1.0")

    raw_timestamp = fields["auth_timestamp"]
    try:
        # ASCII only: float() also reads other scripts' digits (Arabic-Indic, ...) and
        # fullwidth ones, which no library sends.
        if not raw_timestamp.isascii():
            raise ValueError
        timestamp = float(raw_timestamp)
    except ValueError:
        raise ApiError(401, "Invalid auth_timestamp") from None
    if not math.isfinite(timestamp) or abs(now - timestamp) > max_skew:
        raise ApiError(401, "Timestamp expired: check the server clock")

    md5 = fields.get("body_md5")
    if body:
        if md5 is None:
            raise ApiError(401, "Missing body_md5")
        if not constant_time_equals(md5.lower(), body_md5(body)):
            raise ApiError(401, "body_md5 does not match the body")
    elif md5 is not None and md5.lower() != _EMPTY_MD5:
        raise ApiError(401, "body_md5 does not match the body")

    expected = sign(app.secret, api_string_to_sign(method, path, pairs))
    if not constant_time_equals(fields["auth_signature"], expected):
        raise ApiError(401, "Invalid signature")

    if not app.enabled:
        raise ApiError(403, "App is disabled")
