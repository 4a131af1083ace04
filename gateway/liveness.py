"""The one liveness sweep: a periodic pass over the open connections.

Each open connection is handed to its route (``WsHandler.on_silence``) with how long it
has been silent; the route applies its rule. Every route ends with the core rule
(``Heartbeat``): a WebSocket ping after ``ping_interval`` of silence, a 1001 close after
``idle_timeout``. The Pusher route applies Pusher's ``activity_timeout`` rule first
(``pusher:ping``, then 4201), because pusher-js understands those and not a bare 1001.

A connection does not read the clock when data arrives: it marks itself ``SEEN`` (one
constant store per read), and the sweep turns the mark into the time of the sweep. So
silence is known to one sweep period, and a silent peer is pinged between ``interval`` and
``interval`` plus two periods. The sweep runs a few times per interval, at the cost of one
pass over the registry per period (about 10 ms per 100k connections).
"""

from __future__ import annotations

from gateway.connection import OPEN, Connection
from gateway.connection.base import SEEN
from gateway.registry import Registry
from protocol import closecodes


class Heartbeat:
    """The core rule: ping a silent connection, close one silent past the idle timeout."""

    __slots__ = ("idle_timeout", "ping_interval")

    def __init__(self, ping_interval: float, idle_timeout: float) -> None:
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout

    def check(self, conn: Connection, silent: float) -> None:
        idle = self.idle_timeout
        if idle > 0 and silent >= idle:
            conn.close(closecodes.GOING_AWAY, "idle timeout")
        elif self.ping_interval > 0 and silent >= self.ping_interval and not conn.pinged:
            conn.ping()

    @property
    def period(self) -> float | None:
        """How often the sweep must run for this rule (None: the rule is off)."""
        interval = self.ping_interval or self.idle_timeout
        return interval / 4 if interval > 0 else None


class LivenessSweep:
    """Calls each open connection's route with its silence, every ``period`` seconds."""

    __slots__ = ("registry",)

    def __init__(self, registry: Registry[Connection]) -> None:
        self.registry = registry

    def __call__(self, now: float) -> None:
        # ``iter(registry)`` is a snapshot: a route may close connections as it goes.
        for conn in self.registry:
            seen = conn.last_seen
            if seen == SEEN:
                # Active since the last sweep: silent from now on, at most.
                conn.last_seen = now
                silent = 0.0
            else:
                silent = now - seen
            handler = conn.handler
            if handler is not None and conn.state is OPEN:
                handler.on_silence(conn, silent)
