"""uvgate's I/O shell: a uvloop WebSocket gateway with first-message authentication.

What embedders use::

    from gateway import Config, Gateway, Identity, AuthFailed, BaseVerifier

    class MyVerifier(BaseVerifier):
        name = "mine"
        def verify(self, message, conn: ConnectionInfo) -> Identity: ...

    gateway = Gateway(Config(port=6001), verifier=MyVerifier(), on_message=handle)
    await gateway.serve()

The names are imported on first use (PEP 562), so ``python -m gateway`` can take the
working directory off ``sys.path`` (``gateway/__main__.py``) before any dependency loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First: with UVGATE_PURE_PYTHON=1 every gateway module loads from its .py source,
# compiled extensions or not (gateway/purepy.py; protocol/purepy.py does it for protocol).
from gateway import purepy  # noqa: F401

if TYPE_CHECKING:
    from gateway.applications import Application, CallbackApplication
    from gateway.config import Config
    from gateway.connection import Connection
    from gateway.http import HttpResponse
    from gateway.logs import setup_logging
    from gateway.registry import Registry
    from gateway.server import Gateway
    from gateway.tokens import issue_token
    from gateway.verifiers.base import (
        AuthFailed,
        BaseVerifier,
        ConnectionInfo,
        Identity,
        Verifier,
        VerifyResult,
    )
    from protocol import closecodes
    from protocol.codecs import CodecError

_EXPORTS = {
    "Application": "gateway.applications",
    "AuthFailed": "gateway.verifiers.base",
    "BaseVerifier": "gateway.verifiers.base",
    "CallbackApplication": "gateway.applications",
    "CodecError": "protocol.codecs",
    "Config": "gateway.config",
    "Connection": "gateway.connection",
    "ConnectionInfo": "gateway.verifiers.base",
    "Gateway": "gateway.server",
    "HttpResponse": "gateway.http",
    "Identity": "gateway.verifiers.base",
    "Registry": "gateway.registry",
    "Verifier": "gateway.verifiers.base",
    "VerifyResult": "gateway.verifiers.base",
    "closecodes": "protocol",
    "issue_token": "gateway.tokens",
    "setup_logging": "gateway.logs",
}

__all__ = [
    "Application",
    "AuthFailed",
    "BaseVerifier",
    "CallbackApplication",
    "CodecError",
    "Config",
    "Connection",
    "ConnectionInfo",
    "Gateway",
    "HttpResponse",
    "Identity",
    "Registry",
    "Verifier",
    "VerifyResult",
    "closecodes",
    "issue_token",
    "setup_logging",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
