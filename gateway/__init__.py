"""uvgate's I/O shell: a uvloop WebSocket gateway with first-message authentication.

What embedders use::

    from gateway import Config, Gateway, Identity, AuthFailed, BaseVerifier

    class MyVerifier(BaseVerifier):
        name = "mine"
        def verify(self, message, conn: ConnectionInfo) -> Identity: ...

    gateway = Gateway(Config(port=6001), verifier=MyVerifier(), on_message=handle)
    await gateway.serve()
"""

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

__all__ = [
    "Application",
    "AuthFailed",
    "BaseVerifier",
    "CallbackApplication",
    "Config",
    "Connection",
    "ConnectionInfo",
    "Gateway",
    "HttpResponse",
    "Identity",
    "Registry",
    "Verifier",
    "VerifyResult",
    "issue_token",
    "setup_logging",
]
