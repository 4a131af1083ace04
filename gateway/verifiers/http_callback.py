"""``http``: ask an HTTP endpoint, like Laravel's ``/broadcasting/auth``.

The first message and what the gateway knows about the connection are POSTed as
JSON; the upgrade request's cookie/authorization headers are forwarded as real
headers so the backend's session or token middleware authenticates the user as
if the browser had called it. The answer maps to an ``Identity`` or a close code:

    2xx {"user"|"user_id"|"id": ..., "info"?: {...}, "groups"?: [...]} -> Identity
    401 -> 4401, 403 -> 4403 (reason from {"reason": "..."} when short and printable)
    timeout -> 4503 "auth backend timeout"; refused, 5xx, 3xx... -> 4503 "auth backend unavailable"

One pooled ``aiohttp.ClientSession`` per verifier, created on first use inside the
running loop (keep-alive, at most ``max_connections`` sockets), closed by ``aclose``.
Its cookie jar is a ``DummyCookieJar``: a shared jar would store one user's
``Set-Cookie`` (Laravel sends a session cookie on every answer) and send it with
the next user's request.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import orjson

from protocol import closecodes

from . import _options
from ._ratelog import LOG_INTERVAL, RateLimitedLog
from .base import AUTH_UNAVAILABLE, AuthFailed, BaseVerifier, ConnectionInfo, Identity, clip_reason

if TYPE_CHECKING:
    import aiohttp

# Under ``uvgate.`` so its lines get the configured log format (``setup_logging``).
logger = logging.getLogger("uvgate.verifiers.http")

DEFAULT_FORWARD_HEADERS = ("cookie", "authorization")
MAX_RESPONSE_BYTES = 64 * 1024  # an auth answer is tiny; do not buffer a runaway body
__all__ = ["LOG_INTERVAL", "HttpVerifier"]

# Headers the verifier sets itself or that describe the hop, not the user: never
# forwarded from the peer nor configurable (a peer-chosen X-Forwarded-For would
# let it pick the IP the backend rate-limits or allow-lists).
_RESERVED = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "x-forwarded-for",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.1 field-name
_BAD_VALUE = re.compile(r"[\r\n\x00]")

_NO_USER = "auth backend returned no user"
_REJECTED = "rejected by auth backend"
_TIMEOUT = "auth backend timeout"
_UNAVAILABLE = "auth backend unavailable"


def _json_default(obj: Any) -> Any:
    # msgpack first messages may carry bin values; JSON has no bytes.
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).decode("utf-8")  # UnicodeDecodeError -> TypeError-ish -> refused
    raise TypeError


def _user_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Laravel ids are integers
    if isinstance(value, str) and value:
        return value
    return None


def _identity(body: Any) -> Identity:
    """The ``Identity`` in a 2xx body, or AuthFailed(4401)."""
    if not isinstance(body, dict):
        raise AuthFailed(closecodes.AUTH_FAILED, _NO_USER)
    user = body.get("user")
    if isinstance(user, dict):  # {"user": <serialised user model>}
        user = user.get("id")
    if user is None:
        user = body.get("user_id", body.get("id"))
    uid = _user_id(user)
    if uid is None:
        raise AuthFailed(closecodes.AUTH_FAILED, _NO_USER)
    info = body.get("info", body.get("user_info"))
    groups = body.get("groups", ())
    if (info is not None and not isinstance(info, dict)) or not (
        isinstance(groups, list | tuple) and all(isinstance(g, str) for g in groups)
    ):
        raise AuthFailed(closecodes.AUTH_FAILED, "auth backend returned a bad identity")
    return Identity(uid, info, tuple(groups))


def _reason(body: Any) -> str:
    """The backend's ``reason`` if it is safe to show the peer, else a fixed one."""
    reason = body.get("reason") if isinstance(body, dict) else None
    if isinstance(reason, str):
        reason = clip_reason(reason.strip())
        if reason and reason.isprintable():
            return reason
    return _REJECTED


class HttpVerifier(BaseVerifier):
    """Authenticate through an HTTP callback.

    Options:
        url: the endpoint to POST to (required; http or https).
        timeout: seconds for the whole exchange (default 3.0).
        headers: static headers added to every request (e.g. an API key);
            they win over forwarded ones of the same name.
        forward_headers: upgrade-request headers to forward (default
            ["cookie", "authorization"]).
        max_connections: connection pool size (default 100).
    """

    name = "http"

    def __init__(
        self,
        *,
        url: str,
        timeout: float = 3.0,
        headers: Mapping[str, str] | None = None,
        forward_headers: Sequence[str] = DEFAULT_FORWARD_HEADERS,
        max_connections: int = 100,
    ) -> None:
        n = self.name
        try:
            import aiohttp
        except ImportError:  # pragma: no cover - aiohttp is an optional dependency
            raise ValueError("verifier 'http' needs the aiohttp package") from None
        self._aiohttp = aiohttp
        self.url = _options.string(n, "url", url)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("verifier 'http' option 'url' must be an http:// or https:// URL")
        # user:password@ in the URL becomes a static basic Authorization header (so
        # it wins over a forwarded one, which aiohttp would refuse to combine with
        # it) and stays out of ``self.url``, which appears in logs.
        basic = None
        if "@" in parts.netloc:
            # RFC 7617 2: "Basic " + base64(user-id ":" password), UTF-8 (2.1).
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            basic = "Basic " + base64.b64encode(pair.encode()).decode()
            self.url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self.timeout = _options.number(n, "timeout", timeout, positive=True)
        self.max_connections = _options.integer(n, "max_connections", max_connections)

        self.headers = {} if headers is None else _options.str_mapping(n, "headers", headers)
        for name, value in self.headers.items():
            self._check_header(name, "headers")
            if _BAD_VALUE.search(value):
                raise ValueError(f"verifier 'http' option 'headers': bad value for {name!r}")
        static = {name.lower() for name in self.headers}
        if basic is not None:
            if "authorization" in static:
                raise ValueError(
                    "verifier 'http': credentials in 'url' and an Authorization in 'headers'"
                )
            self.headers["Authorization"] = basic
            static.add("authorization")
        forward = [h.lower() for h in _options.strings(n, "forward_headers", forward_headers)]
        for name in forward:
            self._check_header(name, "forward_headers")
        # Static headers win: a peer must not override the operator's API key.
        self.forward_headers = tuple(dict.fromkeys(h for h in forward if h not in static))

        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One line per LOG_INTERVAL while the backend is down, not one per connection.
        self._log = RateLimitedLog(logger, LOG_INTERVAL)

    @staticmethod
    def _check_header(name: str, option: str) -> None:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"verifier 'http' option {option!r}: {name!r} is not a header name")
        if name.lower() in _RESERVED:
            raise ValueError(f"verifier 'http' option {option!r}: {name!r} cannot be set")

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed:
            if self._loop is not loop:
                raise RuntimeError("an HttpVerifier serves one event loop; load one per loop")
            return session
        aiohttp = self._aiohttp
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections),
            cookie_jar=aiohttp.DummyCookieJar(),
            # The per-request asyncio.timeout below is the one clock.
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": "uvgate-verifier"},
        )
        self._session, self._loop = session, loop
        return self._session

    def _warn(self, msg: str, *args: Any) -> None:
        self._log.warn(msg, *args, fields={"verifier": self.name, "url": self.url})

    def _request(
        self, message: Mapping[str, Any], conn: ConnectionInfo
    ) -> tuple[bytes, dict[str, str]]:
        forwarded = {}
        for name in self.forward_headers:
            value = conn.headers.get(name)
            if value is not None and not _BAD_VALUE.search(value):
                forwarded[name] = value
        doc = {
            "message": message,
            "connection": {
                "id": conn.connection_id,
                "remote_ip": conn.remote_ip,
                "remote_port": conn.remote_port,
                "path": conn.path,
                "query": dict(conn.query),
                "headers": forwarded,
                "subprotocol": conn.subprotocol,
            },
        }
        try:
            body = orjson.dumps(doc, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
        except (orjson.JSONEncodeError, UnicodeDecodeError):
            raise AuthFailed(closecodes.AUTH_FAILED, "auth message cannot be forwarded") from None
        headers = {
            **forwarded,
            **self.headers,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Forwarded-For": conn.remote_ip,
        }
        return body, headers

    async def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        body, headers = self._request(message, conn)
        session = self._get_session()
        aiohttp = self._aiohttp
        try:
            async with asyncio.timeout(self.timeout):
                # No redirects: a 302 to a login page is not an answer, and following
                # it would send the forwarded cookies to wherever it points.
                async with session.post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    raw = await self._read(resp)
        except TimeoutError:
            self._warn("auth backend %s: no answer within %.1fs", self.url, self.timeout)
            raise AuthFailed(AUTH_UNAVAILABLE, _TIMEOUT) from None
        except (aiohttp.ClientError, OSError, _TooBig) as exc:
            self._warn("auth backend %s unavailable: %r", self.url, exc)
            raise AuthFailed(AUTH_UNAVAILABLE, _UNAVAILABLE) from None

        if 200 <= status < 300 or status in (401, 403):
            try:
                doc = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                doc = None
            if status == 401:
                raise AuthFailed(closecodes.AUTH_FAILED, _reason(doc))
            if status == 403:
                raise AuthFailed(closecodes.AUTH_FORBIDDEN, _reason(doc))
            return _identity(doc)
        self._warn("auth backend %s answered HTTP %d", self.url, status)
        raise AuthFailed(AUTH_UNAVAILABLE, _UNAVAILABLE)

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > MAX_RESPONSE_BYTES:
            raise _TooBig(resp.content_length)
        buf = bytearray()
        async for chunk in resp.content.iter_any():
            buf += chunk
            if len(buf) > MAX_RESPONSE_BYTES:
                raise _TooBig(len(buf))
        return bytes(buf)

    async def aclose(self) -> None:
        """Close the pool; a later ``verify`` opens a new one."""
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            await session.close()


class _TooBig(Exception):
    """The backend's answer is larger than MAX_RESPONSE_BYTES."""
