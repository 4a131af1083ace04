"""First-message verifiers: the contract, the built-ins and the loader.

``load_verifier(spec, options)`` builds one from the config: ``spec`` is a built-in
name (``none``, ``static``, ``hmac`` - the default -, ``jwt``, ``http``) or a
dotted path ``package.module:Name`` to your own class or function.
"""

from __future__ import annotations

from .anonymous import AnonymousVerifier
from .base import (
    AUTH_UNAVAILABLE,
    AuthFailed,
    BaseVerifier,
    ConnectionInfo,
    Identity,
    Verifier,
    VerifyResult,
    clip_reason,
    token_of,
)
from .hmac_token import HmacVerifier
from .http_callback import HttpVerifier
from .jwt_token import JwtVerifier
from .loader import BUILTIN_VERIFIERS, DEFAULT_VERIFIER, FunctionVerifier, load_verifier
from .static import StaticVerifier

__all__ = [
    "AUTH_UNAVAILABLE",
    "BUILTIN_VERIFIERS",
    "DEFAULT_VERIFIER",
    "AnonymousVerifier",
    "AuthFailed",
    "BaseVerifier",
    "ConnectionInfo",
    "FunctionVerifier",
    "HmacVerifier",
    "HttpVerifier",
    "Identity",
    "JwtVerifier",
    "StaticVerifier",
    "Verifier",
    "VerifyResult",
    "clip_reason",
    "load_verifier",
    "token_of",
]
