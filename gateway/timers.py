"""Time for one gateway: a coarse clock, connection deadlines and periodic jobs, on one tick.

One ``loop.call_later`` handle per connection would cost a few hundred bytes and a heap
operation each, for deadlines that are almost always cancelled. Instead:

* ``now`` is the loop time, refreshed every ``TICK``: a connection stamps ``last_seen``
  with it on every read at the cost of two attribute loads, not a clock call;
* connections that are handshaking, authenticating (``pending``) or closing (``closing``)
  keep their deadline in ``Connection.expires``; these sets are small (a slowloris flood
  of 20k sockets is ~20k float compares every ``SWEEP`` s, under 1% of a core), so the
  common short-lived connection never touches a timer structure;
* open connections with a deadline (Pusher's ``require_auth_within``) sit in the
  ``DeadlineWheel``, whose one-tick buckets are fired by the same tick;
* periodic jobs (the liveness sweep, cache expiry) run from the tick when due.

A deadline fires between 0 and one ``TICK`` (``SWEEP`` for pending/closing) late, which is
fine for timeouts measured in seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from gateway.deadlines import DeadlineWheel

log = logging.getLogger("uvgate.timers")

TICK = 0.1  # seconds: resolution of the deadline wheel and of ``now``
SWEEP = 0.25  # seconds between two passes over the pending and closing sets


class Expiring(Protocol):
    """What the timers need of a connection."""

    expires: float
    deadline_slot: int

    def on_deadline(self) -> None: ...


class _Job:
    __slots__ = ("due", "period", "run")

    def __init__(self, period: float, run: Callable[[float], None]) -> None:
        self.period = period
        self.run = run
        self.due = 0.0


# Not generic (an extension type cannot subclass typing.Generic): the sets hold
# connections, which ``Expiring`` describes.
class Timers:
    __slots__ = (
        "_handle",
        "_jobs",
        "_next_sweep",
        "_stopping",
        "closing",
        "now",
        "pending",
        "wheel",
    )

    def __init__(self) -> None:
        self.now = 0.0
        self.wheel = DeadlineWheel(TICK)
        self.pending: set[Any] = set()  # handshaking or not yet authenticated
        # Out of the registry, closing handshake under way, socket not yet closed.
        self.closing: set[Any] = set()
        self._jobs: list[_Job] = []
        self._handle: asyncio.TimerHandle | None = None
        self._next_sweep = 0.0
        self._stopping = False

    def every(self, period: float, run: Callable[[float], None]) -> None:
        """Call ``run(now)`` about every ``period`` seconds (at least one tick apart)."""
        job = _Job(max(period, TICK), run)
        job.due = self.now + job.period
        self._jobs.append(job)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        self._stopping = False
        for job in self._jobs:
            job.due = self.now + job.period
        self._handle = loop.call_later(TICK, self._tick)

    def stop_when_idle(self) -> None:
        """Shutting down: keep ticking only while connections still need deadlines."""
        self._stopping = True

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self.now = now = loop.time()
        try:
            self.wheel.expire(now, _deadline_failed)
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP
                _expire(self.pending, now)
                _expire(self.closing, now)
            for job in self._jobs:
                if now >= job.due:
                    job.due = now + job.period
                    try:
                        job.run(now)
                    except Exception:
                        log.exception("periodic job %r failed", job.run)
        finally:
            if not self._stopping or self.pending or self.closing or len(self.wheel):
                self._handle = loop.call_later(TICK, self._tick)
            else:
                self._handle = None


def _expire(conns: set[Any], now: float) -> None:
    """Fire the expired handshake/auth/close deadlines of ``conns``."""
    if not conns:
        return
    expired = [c for c in conns if 0.0 < c.expires <= now]
    for conn in expired:
        conn.expires = 0.0
        try:
            conn.on_deadline()
        except Exception as exc:
            _deadline_failed(exc)


def _deadline_failed(exc: BaseException) -> None:
    log.error("deadline callback failed", exc_info=exc)
