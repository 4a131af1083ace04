"""Client-event rate limit: a token bucket kept in two floats on the connection.

pusher-protocol.md "Client events": at most 10/s per connection, 4301 beyond. A token
bucket (capacity = rate, refilled continuously) avoids the 2x burst a fixed 1-s window
allows at window edges. The state is two floats the gateway keeps in its connection's
``__slots__`` (no object per connection); ``take`` is a pure function of it and ``now``.
"""

from __future__ import annotations

from .errors import CLIENT_EVENT_REJECTED, PusherError


def take(tokens: float, last: float, now: float, rate: float) -> tuple[bool, float, float]:
    """Spend one token if there is one.

    ``tokens``/``last``: the stored state (start with ``rate`` and the connection's open
    time). Returns ``(allowed, tokens, last)`` to store back. A clock going backwards
    refills nothing.
    """
    elapsed = now - last
    if elapsed > 0:
        tokens = min(rate, tokens + elapsed * rate)
        last = now
    if tokens >= 1.0:
        return True, tokens - 1.0, last
    return False, tokens, last


RATE_LIMITED = "Client event rate limit reached"


def rate_limit_error() -> PusherError:
    """The non-fatal 4301 error frame to answer a refused client event with."""
    return PusherError(CLIENT_EVENT_REJECTED, RATE_LIMITED)


class ClientEventLimiter:
    """Object form of ``take`` for callers that prefer one (tests, the bench)."""

    __slots__ = ("last", "rate", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.last = now

    def allow(self, now: float) -> bool:
        allowed, self.tokens, self.last = take(self.tokens, self.last, now, self.rate)
        return allowed
