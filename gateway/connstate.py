"""The states of one connection and the only legal moves between them (one table).

    HANDSHAKE --(upgrade)--> AWAITING_AUTH --(auth)--> OPEN --> CLOSING --> CLOSED
        |                         |  ^                  ^
        |                         v  | (async verifier) |
        +--(plain HTTP)--> HTTP   AUTHENTICATING --------+

Kept apart from ``gateway.connection`` so the registry and the fan-out can test a
connection's state without importing the connection module.
"""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    HANDSHAKE = 0
    HTTP = 1
    AWAITING_AUTH = 2
    AUTHENTICATING = 3
    OPEN = 4
    CLOSING = 5
    CLOSED = 6


# Module-level aliases: a global load is cheaper than an enum attribute lookup.
HANDSHAKE, HTTP, AWAITING_AUTH, AUTHENTICATING, OPEN, CLOSING, CLOSED = State

# The only legal moves; anything else is a bug and raises.
TRANSITIONS: dict[State, frozenset[State]] = {
    HANDSHAKE: frozenset({HTTP, AWAITING_AUTH, CLOSED}),
    HTTP: frozenset({HANDSHAKE, CLOSED}),
    AWAITING_AUTH: frozenset({AUTHENTICATING, OPEN, CLOSING, CLOSED}),
    AUTHENTICATING: frozenset({OPEN, CLOSING, CLOSED}),
    OPEN: frozenset({CLOSING, CLOSED}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}

# The states in which the peer speaks WebSocket and we may still write frames.
WEBSOCKET_STATES = (AWAITING_AUTH, AUTHENTICATING, OPEN)


class IllegalTransition(RuntimeError):
    """A move the table does not allow: a bug in the gateway, never the peer's doing."""


def check_move(old: State, new: State) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"illegal transition {old.name} -> {new.name}")
