"""Log lines within a budget: a flood of the same refusal is a few lines and a count.

A misconfigured client (a Laravel app with the wrong secret, a load balancer that does
not send the PROXY header) repeats the same mistake many times a second. The operator
needs to see it, with who and why, but not ten thousand times. ``LogBudget`` logs the
first ``per_key`` lines of each key (say: refusal kind, app, IP) and at most ``total``
lines in all per ``interval``; what it drops is counted, and when the interval ends one
"suppressed" line per key tells how many were dropped (one line for all keys when there
are many). Keys are bounded: past ``max_keys`` new keys are only counted.

``flush`` reports the counts of an interval that has ended even if nothing is logged
after it; the gateway calls it from its timers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["LogBudget"]

MAX_SUPPRESSED_LINES = 20  # beyond this many keys to report, one summary line


class _Entry:
    __slots__ = ("fields", "logged", "msg", "suppressed")

    def __init__(self, msg: str, fields: dict[str, Any]) -> None:
        self.msg = msg
        self.fields = fields
        self.logged = 0
        self.suppressed = 0


class LogBudget:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        level: int = logging.WARNING,
        per_key: int = 5,
        total: int = 50,
        interval: float = 60.0,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.per_key = per_key
        self.total = total
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._start = clock()
        self._entries: dict[Hashable, _Entry] = {}
        self._logged = 0
        self._overflow = 0  # lines of keys beyond max_keys

    def log(self, key: Hashable, msg: str, fields: dict[str, Any]) -> bool:
        """Log ``msg`` with ``fields`` unless ``key`` (or everything) is over budget."""
        now = self._clock()
        if now - self._start >= self.interval:
            self._roll(now)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.max_keys:
                self._overflow += 1
                return False
            entry = self._entries[key] = _Entry(msg, fields)
        if entry.logged < self.per_key and self._logged < self.total:
            entry.logged += 1
            self._logged += 1
            self.logger.log(self.level, msg, extra={"fields": fields})
            return True
        entry.suppressed += 1
        return False

    def flush(self, now: float | None = None) -> None:
        """Report the suppressed counts if the interval is over (periodic call)."""
        now = self._clock() if now is None else now
        if now - self._start >= self.interval:
            self._roll(now)

    def _roll(self, now: float) -> None:
        dropped = [e for e in self._entries.values() if e.suppressed]
        window = round(now - self._start, 1)
        if len(dropped) > MAX_SUPPRESSED_LINES or (dropped and self._overflow):
            self.logger.log(
                self.level,
                "similar lines suppressed",
                extra={
                    "fields": {
                        "suppressed": sum(e.suppressed for e in dropped) + self._overflow,
                        "keys": len(dropped) + (1 if self._overflow else 0),
                        "seconds": window,
                    }
                },
            )
        else:
            for entry in dropped:
                self.logger.log(
                    self.level,
                    f"{entry.msg}: similar lines suppressed",
                    extra={
                        "fields": {
                            **entry.fields,
                            "suppressed": entry.suppressed,
                            "seconds": window,
                        }
                    },
                )
            if self._overflow:
                self.logger.log(
                    self.level,
                    "similar lines suppressed",
                    extra={"fields": {"suppressed": self._overflow, "seconds": window}},
                )
        self._entries.clear()
        self._logged = 0
        self._overflow = 0
        self._start = now
