"""The verifier contract: the first message in, an ``Identity`` or ``AuthFailed`` out.

A verifier sees the decoded first message (a mapping, whatever the codec) and what
the gateway knows about the connection. It returns an ``Identity`` or raises
``AuthFailed(code, reason)``. ``verify`` may be a plain function or a coroutine
function; the gateway calls sync verifiers inline (no task on the fast path) and
schedules async ones.

``requires_message`` tells the gateway whether to wait for a first message at all:
``False`` only for the anonymous ``none`` verifier, which authenticates on the
upgrade alone (echo and Autobahn conformance targets). ``needs_connection_info =
False`` says ``verify`` ignores its ``conn`` argument (only the hmac verifier says so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from protocol import closecodes

# The auth backend (an HTTP callback...) could not answer: HTTP 503 + 4000. Also
# added to ``protocol.closecodes``; kept here so verifiers do not depend on that.
AUTH_UNAVAILABLE = 4503

# Reasons travel in the error frame and the close frame (RFC 6455 5.5: a control
# frame payload is <= 125 bytes, 2 of which are the code), so they stay short.
MAX_REASON_BYTES = 100


def clip_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """``reason`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    raw = reason.encode("utf-8", "replace")
    if len(raw) <= limit:
        return reason
    return raw[:limit].decode("utf-8", "ignore")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the connection belongs to once authenticated."""

    user: str
    info: Mapping[str, Any] | None = None
    # Groups the connection joins right after auth (e.g. chat rooms granted by a token).
    groups: tuple[str, ...] = ()


# Not frozen: one is built per authentication, and a frozen slotted dataclass
# pays an object.__setattr__ call per field in __init__ (measured on the hot path).
@dataclass(slots=True)
class ConnectionInfo:
    """What a verifier may know about the connection being authenticated."""

    connection_id: str
    remote_ip: str
    remote_port: int
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    subprotocol: str | None = None


class AuthFailed(Exception):
    """Refuse the connection: the gateway sends an error frame, then closes with ``code``.

    ``reason`` goes to the peer in the error frame and the close frame, so keep it
    short and free of secrets (<= 100 bytes of UTF-8; close reasons are capped at 123).
    """

    def __init__(self, code: int = closecodes.AUTH_FAILED, reason: str = "authentication failed"):
        # Fast path: 25 characters are at most 100 bytes of UTF-8.
        if len(reason) > MAX_REASON_BYTES // 4:
            reason = clip_reason(reason)
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"AuthFailed({self.code}, {self.reason!r})"


VerifyResult = Identity | Awaitable[Identity]


@runtime_checkable
class Verifier(Protocol):
    """Anything with a ``name`` and a ``verify`` method (sync or async)."""

    name: str

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> VerifyResult: ...


class BaseVerifier:
    """Convenience base: a name, options from the config, and a no-op ``aclose``."""

    name = "base"
    # The gateway waits for a first message and passes it to ``verify``; only the
    # anonymous verifier sets this to False (no auth message expected at all).
    requires_message = True
    # False: ``verify`` never reads its ``conn`` argument, so the gateway may pass an
    # empty ConnectionInfo instead of building one per connection (the hmac verifier).
    needs_connection_info = True

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__} takes no option(s): {', '.join(options)}")

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> VerifyResult:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release pooled resources (HTTP sessions...) at shutdown."""
        return None


def token_of(message: Mapping[str, Any]) -> str:
    """The ``token`` of a ``{"type": "auth", "token": ...}`` message, or AuthFailed."""
    if message.get("type") != "auth":
        raise AuthFailed(closecodes.AUTH_FAILED, "first message must be auth")
    token = message.get("token")
    if not isinstance(token, str) or not token:
        raise AuthFailed(closecodes.AUTH_FAILED, "missing token")
    return token
