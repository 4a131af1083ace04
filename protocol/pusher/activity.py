"""Pusher's activity rule: ``pusher:ping`` a silent socket, close it with 4201 if it stays so.

pusher-protocol.md: after ``activity_timeout`` of silence a ``pusher:ping`` goes out; no
answer within the pong timeout (pusher-js waits 30 s for ours) closes with 4201 "Pong
reply not received". The gateway's core heartbeat would close the same socket with 1001
at its ``idle_timeout``, a code pusher-js does not understand, so when that heartbeat is
on, ``limits`` pulls Pusher's close in front of it.
"""

from __future__ import annotations

import enum

PONG_TIMEOUT = 30.0  # pusher-protocol.md: pusher-js waits 30 s for a pong; so do we
NO_PONG = "Pong reply not received"


class Activity(enum.Enum):
    NONE = 0  # nothing to do
    ANSWERED = 1  # active again: forget an unanswered ping
    PING = 2  # send pusher:ping (and remember it)
    CLOSE = 3  # pusher:error 4201, then close 4201


def limits(
    activity_timeout: float,
    pong_timeout: float = PONG_TIMEOUT,
    *,
    idle_timeout: float = 0.0,
    period: float = 0.0,
) -> tuple[float, float]:
    """(ping after, close after) seconds of silence.

    ``idle_timeout``: the core's idle close (0 = off); ``period``: how often the caller
    checks. The close comes at least two periods before the core's 1001.
    """
    ping_after = float(activity_timeout)
    close_after = ping_after + pong_timeout
    if idle_timeout > 0:
        cap = max(idle_timeout - 2 * period, period)
        if close_after > cap:
            close_after = cap
            ping_after = min(ping_after, cap / 2)
    return ping_after, close_after


def check(silent: float, pinged: bool, ping_after: float, close_after: float) -> Activity:
    """What to do with a socket silent for ``silent`` seconds."""
    if silent < ping_after:
        return Activity.ANSWERED if pinged else Activity.NONE
    if silent >= close_after:
        return Activity.CLOSE
    return Activity.NONE if pinged else Activity.PING
