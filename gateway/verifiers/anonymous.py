"""``none``: every connection is allowed, anonymously.

For echo servers and conformance targets (Autobahn): the gateway does not wait for
an auth message at all (``requires_message = False``). If ``verify`` is called
anyway, any message is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _options
from .base import BaseVerifier, ConnectionInfo, Identity


class AnonymousVerifier(BaseVerifier):
    """Allow everyone: ``Identity("anon-<connection id>")`` or a fixed ``user``.

    Options:
        user: one user id for every connection (default: ``anon-`` + connection id).
    """

    name = "none"
    requires_message = False

    def __init__(self, *, user: str | None = None) -> None:
        self.user = None if user is None else _options.string(self.name, "user", user)

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        return Identity(self.user or "anon-" + conn.connection_id)
