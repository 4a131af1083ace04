"""Errors of the Pusher layer; each one knows the reply it deserves.

* ``PusherError`` -> a ``pusher:error`` frame ``{"message", "code"}``. When ``fatal``
  (code 4000-4299, see pusher-protocol.md "Close / error codes") the gateway then closes
  the socket with the same code; 4300+ codes are non-fatal error frames only.
* ``SubscriptionError`` -> a ``pusher:subscription_error`` frame on ``channel`` (what
  laravel-echo's ``.error()`` listens to); ``code`` says what to close with if the app's
  ``auth_failure`` policy is ``"close"`` and the error is an authentication failure.
* ``ApiError`` -> an HTTP response ``status`` with body ``{"error": message}``.

Messages are fixed strings chosen here, never text from another exception.
"""

from __future__ import annotations

from protocol.errors import ProtocolError

# Codes (pusher-protocol.md "Close / error codes"; 4300+ are uvgate's non-fatal choices).
APP_NOT_FOUND = 4001
APP_DISABLED = 4003
OVER_QUOTA = 4004
PATH_NOT_FOUND = 4005
INVALID_PROTOCOL = 4006
UNSUPPORTED_PROTOCOL = 4007
MISSING_PROTOCOL = 4008
UNAUTHORIZED = 4009
OVER_CAPACITY = 4100
RECONNECT_NOW = 4200
PONG_NOT_RECEIVED = 4201
INACTIVITY = 4202
INVALID_MESSAGE = 4300  # uvgate: malformed frame; pusher-js never sends one, so no close
CLIENT_EVENT_REJECTED = 4301
WATCHLIST_TOO_BIG = 4302
PRESENCE_FULL = 4304  # uvgate: presence channel member limit (sent as subscription_error)


class PusherError(ProtocolError):
    """Refusal answered with ``pusher:error``; close too when ``fatal``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def fatal(self) -> bool:
        """True for 4000-4299: pusher-js treats these as close codes."""
        return 4000 <= self.code < 4300

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class SubscriptionError(PusherError):
    """A subscription refused: answer ``pusher:subscription_error`` on ``channel``.

    ``type`` / ``status`` go in the frame data (``AuthError``/401 for a bad signature, as
    pusher-js and laravel-echo expect). ``is_auth_failure`` tells the gateway whether the
    app's ``auth_failure="close"`` policy applies (close with ``code`` = 4009).
    """

    def __init__(
        self, channel: str, code: int, message: str, *, type: str = "AuthError", status: int = 401
    ) -> None:
        super().__init__(code, message)
        self.channel = channel
        self.type = type
        self.status = status

    @property
    def is_auth_failure(self) -> bool:
        return self.code == UNAUTHORIZED


def presence_full(channel: str) -> SubscriptionError:
    """The refusal of a join past the app's ``max_presence_members`` (this node's count
    or the cluster's: both say it the same way)."""
    return SubscriptionError(
        channel,
        PRESENCE_FULL,
        "The presence channel has reached its member limit",
        type="LimitReached",
        status=403,
    )


class ApiError(ProtocolError):
    """HTTP API refusal: respond with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r})"
