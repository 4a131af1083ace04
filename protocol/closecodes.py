"""Close codes: RFC 6455 section 7.4.1 and uvgate's own (HTTP status + 4000)."""

from __future__ import annotations

# RFC 6455 7.4.1
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005  # never sent on the wire
ABNORMAL = 1006  # never sent on the wire
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
MANDATORY_EXTENSION = 1010
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013

# uvgate native protocol: HTTP status + 4000, so the number explains itself.
AUTH_FAILED = 4401
AUTH_FORBIDDEN = 4403
AUTH_TIMEOUT = 4408
SLOW_CONSUMER = 4413  # the peer does not read; its unsent bytes passed the bound
AUTH_RATE_LIMITED = 4429
AUTH_UNAVAILABLE = 4503  # the verifier's backend (HTTP callback) timed out or failed

# Codes a peer may legitimately put in a close frame (RFC 6455 7.4.1/7.4.2).
_VALID_RFC = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_valid_peer_code(code: int) -> bool:
    """True if ``code`` may appear in a close frame received from a peer."""
    return code in _VALID_RFC or 3000 <= code <= 4999
