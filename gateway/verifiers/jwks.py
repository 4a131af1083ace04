"""A JSON Web Key Set (RFC 7517) fetched over HTTP and cached, for the ``jwt`` verifier.

PyJWT's ``PyJWKClient`` fetches with ``urllib`` and blocks; on the gateway's loop that
would stall every connection for the length of a request. This cache fetches with
``aiohttp`` instead, and is built so an identity provider is neither hammered nor a
single point of failure:

* the set is used for ``max_age`` seconds (less if the answer's ``Cache-Control:
  max-age`` says so), then refetched on the next token;
* a token whose ``kid`` is not in the set (the provider rotated its keys) triggers one
  refetch, but never two fetches within ``min_interval`` seconds, so tokens with made-up
  ``kid`` values cost nothing but a refusal;
* concurrent tokens share one fetch;
* when the endpoint is down, the last good set stays in use for the keys it has; a token
  it cannot check is refused with 4503 (auth backend unavailable), like the ``http``
  verifier's backend failures, and one warning per interval is logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jwt
import orjson

from ._ratelog import RateLimitedLog

if TYPE_CHECKING:
    import aiohttp

__all__ = ["JwksCache", "JwksUnavailable", "SigningKey"]

log = logging.getLogger("uvgate.verifiers.jwt")

MAX_JWKS_BYTES = 512 * 1024  # a key set is a few KB; do not buffer a runaway body
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.I)


class JwksUnavailable(Exception):
    """The key set could not be fetched (the reason is logged, not shown to peers)."""


class SigningKey:
    """One usable key of the set: the key object and the ``alg`` it is bound to, if any."""

    __slots__ = ("alg", "key", "kid")

    def __init__(self, kid: str | None, key: Any, alg: str | None) -> None:
        self.kid = kid
        self.key = key
        self.alg = alg


def parse_jwks(doc: Any) -> dict[str | None, SigningKey]:
    """The signature keys of a JWKS document, by ``kid``.

    Keys for encryption (``use: enc``), symmetric ones (``kty: oct``, which have no place
    in a published set) and keys PyJWT cannot load are skipped; a set with no usable key
    is an error.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksUnavailable('not a JWK set (expected {"keys": [...]})')
    keys: dict[str | None, SigningKey] = {}
    for data in doc["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        if data.get("kty") == "oct":
            continue
        try:
            jwk = jwt.PyJWK(data)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        kid = data.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        alg = data.get("alg")
        keys[kid] = SigningKey(kid, jwk.key, alg if isinstance(alg, str) else None)
    if not keys:
        raise JwksUnavailable("the JWK set has no usable signature key")
    return keys


class JwksCache:
    """Keys of ``url``, fetched on demand; one instance serves one event loop."""

    def __init__(
        self,
        url: str,
        *,
        max_age: float = 300.0,
        min_interval: float = 10.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.max_age = max_age
        self.min_interval = min(min_interval, max_age)
        self.timeout = timeout
        self.fetches = 0  # attempts, successful or not (read by tests and operators)
        self._clock = clock
        self._keys: dict[str | None, SigningKey] = {}
        self._expires = -1.0  # clock time after which the set is refetched
        self._last_attempt: float | None = None
        self._last_failed = False
        self._inflight: asyncio.Future[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = RateLimitedLog(log)

    # -- lookups (sync: the fast path while the set is fresh) ----------------------------
    def fresh(self) -> bool:
        return self._clock() < self._expires

    def get(self, kid: str | None) -> SigningKey | None:
        """The key for ``kid`` in the current set (fresh or not); a token without ``kid``
        gets the only key of a one-key set."""
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def may_fetch(self) -> bool:
        """Whether a fetch would start now (not within ``min_interval`` of the last one)."""
        last = self._last_attempt
        return (
            self._inflight is not None
            or last is None
            or (self._clock() - last >= self.min_interval)
        )

    # -- fetching -----------------------------------------------------------------------
    async def refresh(self) -> None:
        """Fetch the set unless one was fetched within ``min_interval`` (then keep it, or
        raise ``JwksUnavailable`` if that attempt failed); concurrent callers share one
        fetch."""
        if self._inflight is None:
            if not self.may_fetch():
                if self._last_failed:
                    raise JwksUnavailable("the last fetch failed; retrying later")
                return
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._fetched)
        # Shielded: one connection giving up must not cancel the fetch of the others.
        await asyncio.shield(self._inflight)

    def _fetched(self, fut: asyncio.Future[None]) -> None:
        if self._inflight is fut:
            self._inflight = None
        if not fut.cancelled():
            fut.exception()  # retrieved here: every waiter may have gone away

    async def _fetch(self) -> None:
        self.fetches += 1
        self._last_attempt = self._clock()
        try:
            doc, max_age = await self._download()
            keys = parse_jwks(doc)
        except JwksUnavailable as exc:
            self._failed(str(exc))
            raise
        except Exception as exc:  # timeout, refused, aiohttp.ClientError...
            self._failed(repr(exc))
            raise JwksUnavailable(repr(exc)) from None
        self._keys = keys
        # The provider's max-age, within [min_interval, max_age]: honoured when shorter
        # than ours, never so short that every token would refetch.
        ttl = self.max_age
        if max_age is not None:
            ttl = min(max(max_age, self.min_interval), self.max_age)
        self._expires = self._clock() + ttl
        self._last_failed = False
        log.info(
            "fetched JWKS",
            extra={"fields": {"url": self.url, "keys": len(keys), "ttl": ttl}},
        )

    def _failed(self, why: str) -> None:
        self._last_failed = True
        kept = f"; keeping the last {len(self._keys)} key(s)" if self._keys else ""
        self._log.warn("JWKS %s unavailable: %s%s", self.url, why, kept, fields={"url": self.url})

    async def _download(self) -> tuple[Any, float | None]:
        session = self._get_session()
        async with asyncio.timeout(self.timeout):
            async with session.get(
                self.url, headers={"Accept": "application/json"}, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise JwksUnavailable(f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > MAX_JWKS_BYTES:
                    raise JwksUnavailable("answer too large")
                buf = bytearray()
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    if len(buf) > MAX_JWKS_BYTES:
                        raise JwksUnavailable("answer too large")
                match = _MAX_AGE.search(resp.headers.get("Cache-Control", ""))
        try:
            doc = orjson.loads(bytes(buf))
        except orjson.JSONDecodeError:
            raise JwksUnavailable("answer is not JSON") from None
        return doc, float(match.group(1)) if match else None

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp  # imported on first fetch: verifiers without JWKS never need it

        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed:
            if self._loop is not loop:
                raise RuntimeError("a JWKS cache serves one event loop; load one per loop")
            return session
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),  # asyncio.timeout above is the clock
            headers={"User-Agent": "uvgate-jwks"},
        )
        self._session, self._loop = session, loop
        return session

    async def aclose(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.cancel()
            try:
                await inflight
            except (asyncio.CancelledError, JwksUnavailable):
                pass
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            await session.close()
