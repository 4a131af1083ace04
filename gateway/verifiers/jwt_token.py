"""``jwt``: JSON Web Tokens (RFC 7519) checked with PyJWT.

Exactly one key source: a shared ``secret`` (HS256/384/512), a public key (RS*, PS*,
ES*, EdDSA), or a ``jwks_url`` whose key set is fetched and cached (``jwks.py``). The
algorithm allow-list is fixed at load time and must match the key kind: an HS*
algorithm with a public key is refused, because a verifier that accepted it would check
HMAC signatures keyed with the (public!) PEM text, the classic algorithm-confusion
forgery. ``none`` is never allowed (RFC 8725 3.1/3.2).

Verification is CPU-bound and short, so ``verify`` is sync; with ``jwks_url`` it stays
sync while the cached set is fresh and has the token's ``kid``, and returns a coroutine
(the gateway awaits it) only when the set must be fetched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from protocol import closecodes

from . import _options
from .base import (
    AUTH_UNAVAILABLE,
    AuthFailed,
    BaseVerifier,
    ConnectionInfo,
    Identity,
    token_of,
)
from .jwks import JwksCache, JwksUnavailable, SigningKey

# RFC 7518 3.2: an HMAC key must be at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_MIN_RSA_BITS = 2048  # NIST SP 800-131A; PyJWT warns below this
# What a published key set can verify (never HS*: a JWKS is public).
_JWKS_ALGS = frozenset({*_RSA_ALGS, *_EC_ALGS.values(), "EdDSA"})
_UNKNOWN_KID = "unknown key id"
_KEYS_UNAVAILABLE = "auth keys unavailable"

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

# PyJWT exception -> (close code, reason). Order matters: subclasses first
# (InvalidSignatureError is a DecodeError).
_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (jwt.ExpiredSignatureError, closecodes.AUTH_FAILED, "token expired"),
    (jwt.ImmatureSignatureError, closecodes.AUTH_FAILED, "token not yet valid"),
    (jwt.InvalidAudienceError, closecodes.AUTH_FORBIDDEN, "wrong audience"),
    (jwt.InvalidIssuerError, closecodes.AUTH_FORBIDDEN, "wrong issuer"),
    (jwt.InvalidSignatureError, closecodes.AUTH_FAILED, "bad signature"),
    (jwt.InvalidAlgorithmError, closecodes.AUTH_FAILED, "algorithm not allowed"),
    (jwt.MissingRequiredClaimError, closecodes.AUTH_FAILED, "missing required claim"),
    (jwt.DecodeError, closecodes.AUTH_FAILED, "malformed token"),
    (jwt.InvalidTokenError, closecodes.AUTH_FAILED, "malformed claims"),
)


def _load_public_key(pem: str | bytes, where: str) -> PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"verifier 'jwt': {where} is not a PEM public key") from exc
    if not isinstance(key, PublicKey):
        raise ValueError(f"verifier 'jwt': {where} has an unsupported key type")
    return key


def _key_algorithms(key: PublicKey) -> tuple[frozenset[str], str]:
    """The algorithms ``key`` can verify, and the default one."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"verifier 'jwt': RSA key must be >= {_MIN_RSA_BITS} bits")
        return _RSA_ALGS, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGS.get(key.curve.name)
        if alg is None:
            raise ValueError(f"verifier 'jwt': unsupported EC curve {key.curve.name}")
        return frozenset({alg}), alg
    return frozenset({"EdDSA"}), "EdDSA"


class JwtVerifier(BaseVerifier):
    """Check a JWT with a shared secret or a public key.

    Options:
        secret: HMAC key (>= 32 bytes for HS256, RFC 7518 3.2).
        public_key / public_key_file: PEM public key, inline or from a file.
        jwks_url: http(s) URL of a JSON Web Key Set (the identity provider's
            ``jwks_uri``); the token's ``kid`` picks the key.
        jwks_max_age: seconds a fetched set is used before it is refetched
            (default 300; a shorter Cache-Control max-age wins).
        jwks_min_interval: never fetch twice within this many seconds, whatever
            the tokens' ``kid`` (default 10).
        jwks_timeout: seconds for one fetch (default 3).
        algorithms: allow-list (default ["HS256"] with a secret; with a key
            ["RS256"] for RSA, ["ES256"/"ES384"/"ES512"] for EC, ["EdDSA"];
            ["RS256"] with jwks_url).
        audience: expected ``aud`` (string or list); without it a token that
            carries an ``aud`` is refused (PyJWT semantics).
        issuer: expected ``iss`` (string or list).
        leeway: clock skew in seconds for exp/nbf/iat (default 0).
        user_claim: claim holding the user id (default "sub"). Integer ids are
            accepted in a custom claim; ``sub`` itself must be a string (RFC 7519 4.1.2).
        require: claims that must be present (default ["exp"]).
    Groups come from a ``groups`` claim (list of strings) when present.
    """

    name = "jwt"

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        public_key_file: str | Path | None = None,
        jwks_url: str | None = None,
        jwks_max_age: float = 300.0,
        jwks_min_interval: float = 10.0,
        jwks_timeout: float = 3.0,
        algorithms: Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        leeway: float = 0,
        user_claim: str = "sub",
        require: Sequence[str] = ("exp",),
    ) -> None:
        n = self.name
        given = [k for k, v in (("secret", secret), ("public_key", public_key),
                                ("public_key_file", public_key_file), ("jwks_url", jwks_url))
                 if v is not None]  # fmt: skip
        if not given:
            raise ValueError(
                "verifier 'jwt' needs option 'secret', 'public_key', 'public_key_file' "
                "or 'jwks_url'"
            )
        if len(given) > 1:
            raise ValueError(f"verifier 'jwt' takes only one of {', '.join(map(repr, given))}")

        self._key: bytes | PublicKey | None = None
        self._jwks: JwksCache | None = None
        if jwks_url is not None:
            url = _options.string(n, "jwks_url", jwks_url)
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("verifier 'jwt' option 'jwks_url' must be an http(s) URL")
            max_age = _options.number(n, "jwks_max_age", jwks_max_age, positive=True)
            self._jwks = JwksCache(
                url,
                max_age=max_age,
                min_interval=_options.number(n, "jwks_min_interval", jwks_min_interval),
                timeout=_options.number(n, "jwks_timeout", jwks_timeout, positive=True),
            )
            allowed, default = _JWKS_ALGS, "RS256"
        elif secret is not None:
            self._key = _options.string(n, "secret", secret).encode()
            allowed, default = frozenset(_HMAC_MIN_BYTES), "HS256"
        else:
            if public_key is not None:
                pem: str | bytes = _options.string(n, "public_key", public_key)
                where = "option 'public_key'"
            else:
                if not isinstance(public_key_file, str | Path) or not str(public_key_file):
                    raise _options.bad(n, "public_key_file", "a path", public_key_file)
                where = f"public_key_file {str(public_key_file)!r}"
                try:
                    pem = Path(public_key_file).read_bytes()
                except OSError as exc:
                    raise ValueError(f"verifier 'jwt': cannot read {where}: {exc}") from exc
            self._key = _load_public_key(pem, where)
            allowed, default = _key_algorithms(self._key)

        algs = (default,) if algorithms is None else _options.strings(n, "algorithms", algorithms)
        if not algs:
            raise ValueError("verifier 'jwt' option 'algorithms' must not be empty")
        for alg in algs:
            if alg.lower() == "none":
                raise ValueError("verifier 'jwt': algorithm 'none' is never allowed")
            if alg not in allowed:
                kind = (
                    "a secret"
                    if secret is not None
                    else "jwks_url"
                    if jwks_url is not None
                    else "this public key"
                )
                hint = (
                    " (HS* with a public key allows algorithm confusion)"
                    if alg in _HMAC_MIN_BYTES
                    else ""
                )
                raise ValueError(
                    f"verifier 'jwt': algorithm {alg!r} cannot be used with {kind}{hint}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
            need = _HMAC_MIN_BYTES.get(alg)
            if need and isinstance(self._key, bytes) and len(self._key) < need:
                raise ValueError(
                    f"verifier 'jwt': secret must be >= {need} bytes for {alg} (RFC 7518 3.2)"
                )
        self.algorithms = list(algs)

        self.audience: str | list[str] | None = None
        if audience is not None:
            auds = _options.strings(n, "audience", audience)
            self.audience = auds[0] if isinstance(audience, str) else list(auds)
        self.issuer: str | list[str] | None = None
        if issuer is not None:
            isss = _options.strings(n, "issuer", issuer)
            self.issuer = isss[0] if isinstance(issuer, str) else list(isss)
        self.leeway = _options.number(n, "leeway", leeway)
        self.user_claim = _options.string(n, "user_claim", user_claim)
        self.require = list(_options.strings(n, "require", require))
        # One PyJWT instance per verifier: no shared global options.
        self._jwt = jwt.PyJWT(
            options={
                "require": self.require,
                # Key length is checked above; make PyJWT raise rather than warn.
                "enforce_minimum_key_length": True,
            }
        )

    def verify(
        self, message: Mapping[str, Any], conn: ConnectionInfo
    ) -> Identity | Awaitable[Identity]:
        token = token_of(message)
        jwks = self._jwks
        if jwks is None:
            assert self._key is not None
            return self._decode(token, self._key)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed token") from None
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed token")
        if jwks.fresh():
            key = jwks.get(kid)
            if key is not None:
                return self._decode_jwk(token, header, key)
            if not jwks.may_fetch():
                # An unknown kid refetches at most once per jwks_min_interval:
                # made-up kids cannot make us hammer the identity provider.
                raise AuthFailed(closecodes.AUTH_FAILED, _UNKNOWN_KID)
        return self._verify_fetching(jwks, token, header, kid)

    async def _verify_fetching(
        self, jwks: JwksCache, token: str, header: Mapping[str, Any], kid: str | None
    ) -> Identity:
        try:
            await jwks.refresh()
        except JwksUnavailable:
            # The last good set still checks the keys it has (logged by the cache).
            key = jwks.get(kid)
            if key is None:
                raise AuthFailed(AUTH_UNAVAILABLE, _KEYS_UNAVAILABLE) from None
            return self._decode_jwk(token, header, key)
        key = jwks.get(kid)
        if key is None:
            raise AuthFailed(closecodes.AUTH_FAILED, _UNKNOWN_KID)
        return self._decode_jwk(token, header, key)

    def _decode_jwk(self, token: str, header: Mapping[str, Any], key: SigningKey) -> Identity:
        # A key published with an "alg" verifies that algorithm only (RFC 7517 4.4).
        if key.alg is not None and header.get("alg") != key.alg:
            raise AuthFailed(closecodes.AUTH_FAILED, "algorithm not allowed")
        return self._decode(token, key.key)

    def _decode(self, token: str, key: Any) -> Identity:
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            for kind, code, reason in _ERRORS:
                if isinstance(exc, kind):
                    raise AuthFailed(code, reason) from None
            # InvalidKeyError and friends: a key/config problem, not the token's.
            raise AuthFailed(closecodes.AUTH_FAILED, "bad signature") from None
        user = claims.get(self.user_claim)
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user:
            raise AuthFailed(closecodes.AUTH_FAILED, "token has no user")
        groups = claims.get("groups")
        if groups is None:
            return Identity(user)
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed claims")
        return Identity(user, None, tuple(groups))

    async def aclose(self) -> None:
        """Close the JWKS fetcher's HTTP pool (nothing to do without ``jwks_url``)."""
        if self._jwks is not None:
            await self._jwks.aclose()
