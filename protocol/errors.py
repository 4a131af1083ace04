"""One small exception tree: every error knows the reply it deserves.

A ``HandshakeError`` carries the HTTP status to answer the upgrade request with;
a ``FrameError`` carries the WebSocket close code. Reasons are short, fixed
strings chosen by the protocol layer, never exception text from elsewhere, so
nothing internal leaks to the peer.
"""

from __future__ import annotations

from collections.abc import Sequence


class ProtocolError(Exception):
    """Base class for everything the protocol layer refuses."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeError(ProtocolError):
    """The HTTP request cannot become a WebSocket: answer with ``status``."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = headers


class FrameError(ProtocolError):
    """The peer broke RFC 6455 (or a limit): close with ``close_code``."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        # Messages parsed from the same input before the violation: they were valid
        # and came first, so the caller delivers them before failing (RFC 6455 7.1.7).
        self.events: Sequence[object] = ()
