"""``hmac`` (the default): uvgate's own HMAC-SHA256 expiring tokens.

The format lives in ``gateway.tokens`` (shared with ``uvgate token`` and the
bench). This verifier is on the hot path of every connection, so it is sync and
does one HMAC, one JSON decode and a couple of type checks; the key is encoded
once at load time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol import closecodes

from .. import tokens
from . import _options
from .base import AuthFailed, BaseVerifier, ConnectionInfo, Identity, token_of

# Identity is a frozen dataclass; setting its slots through the member
# descriptors skips the per-field object.__setattr__ of the generated __init__
# (this verifier runs once per connection). The result is the same frozen value.
_new = object.__new__
_set_user = Identity.__dict__["user"].__set__
_set_info = Identity.__dict__["info"].__set__
_set_groups = Identity.__dict__["groups"].__set__


def _identity(user: str, info: Any, groups: tuple[str, ...]) -> Identity:
    identity = _new(Identity)
    _set_user(identity, user)
    _set_info(identity, info)
    _set_groups(identity, groups)
    return identity


class HmacVerifier(BaseVerifier):
    """Check ``v1.`` tokens signed with a shared secret.

    Options:
        secret: the HMAC key (required).
        leeway: seconds of clock skew tolerated past ``exp`` (default 0).

    Failures (all 4401): "bad signature", "token expired", "malformed token",
    "malformed claims" (valid signature but no ``sub``/``exp``, or bad ``grp``/``info``),
    plus ``token_of``'s "first message must be auth" and "missing token".
    """

    name = "hmac"
    # verify() reads the message only: no ConnectionInfo is built per connection.
    needs_connection_info = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "verify" in cls.__dict__:
            cls.needs_connection_info = True  # a verify of its own may read conn

    def __init__(self, *, secret: str, leeway: float = 0) -> None:
        self._key = tokens.TokenKey(_options.string(self.name, "secret", secret))
        self.leeway = _options.number(self.name, "leeway", leeway)

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        try:
            claims = tokens.verify_token(self._key, token_of(message), leeway=self.leeway)
        except tokens.TokenError as exc:
            raise AuthFailed(closecodes.AUTH_FAILED, exc.reason) from None
        info = claims.get("info")
        grp = claims.get("grp")
        if grp is None:
            groups: tuple[str, ...] = ()
        elif isinstance(grp, list) and all(isinstance(g, str) for g in grp):
            groups = tuple(grp)
        else:
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed claims")
        if info is not None and not isinstance(info, dict):
            raise AuthFailed(closecodes.AUTH_FAILED, "malformed claims")
        return _identity(claims["sub"], info, groups)
