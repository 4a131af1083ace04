"""``jwt``: JSON Web Tokens (RFC 7519) checked with PyJWT.

Either a shared ``secret`` (HS256/384/512) or a public key (RS*, PS*, ES*, EdDSA),
never both. The algorithm allow-list is fixed at load time and must match the key
kind: an HS* algorithm with a public key is refused, because a verifier that
accepted it would check HMAC signatures keyed with the (public!) PEM text, the
classic algorithm-confusion forgery. ``none`` is never allowed (RFC 8725 3.1/3.2).
Verification is CPU-bound and short, so ``verify`` is sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from protocol import closecodes

from . import _options
from .base import AuthFailed, BaseVerifier, ConnectionInfo, Identity, token_of

# RFC 7518 3.2: an HMAC key must be at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_MIN_RSA_BITS = 2048  # NIST SP 800-131A; PyJWT warns below this

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
        algorithms: allow-list (default ["HS256"] with a secret; with a key
            ["RS256"] for RSA, ["ES256"/"ES384"/"ES512"] for EC, ["EdDSA"]).
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
        algorithms: Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        leeway: float = 0,
        user_claim: str = "sub",
        require: Sequence[str] = ("exp",),
    ) -> None:
        n = self.name
        given = [k for k, v in (("secret", secret), ("public_key", public_key),
                                ("public_key_file", public_key_file)) if v is not None]  # fmt: skip
        if not given:
            raise ValueError(
                "verifier 'jwt' needs option 'secret', 'public_key' or 'public_key_file'"
            )
        if len(given) > 1:
            raise ValueError(f"verifier 'jwt' takes only one of {', '.join(map(repr, given))}")

        self._key: bytes | PublicKey
        if secret is not None:
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
                kind = "a secret" if secret is not None else "this public key"
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

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        token = token_of(message)
        try:
            claims = self._jwt.decode(
                token,
                self._key,
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
