"""Per-IP failure counting: after too many failed authentications, refuse early with 429.

A fixed window per IP (count, window start): two numbers per offending IP, no
timestamp lists, so a flood of failures from many addresses costs little memory.
The table is bounded; when full, the oldest windows are dropped first (insertion
order of ``dict``), which can only make the limiter more lenient, never wrong.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class FailureLimiter:
    __slots__ = ("_clock", "_entries", "limit", "max_entries", "shared", "window")

    def __init__(
        self,
        limit: int = 30,
        window: float = 60.0,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        # ip -> [window_start, failures]
        self._entries: dict[str, list[float]] = {}
        # In a cluster: told of every failure, so the limit holds across nodes (it calls
        # ``block`` on every node once the IP's failures in the cluster reach the limit).
        self.shared: Callable[[str], None] | None = None

    def record_failure(self, ip: str) -> int:
        """Count one failure for ``ip``; return the failures in its current window."""
        now = self._clock()
        entry = self._entries.get(ip)
        if entry is None or now - entry[0] >= self.window:
            if entry is None and len(self._entries) >= self.max_entries:
                self._evict(now)
            entry = [now, 0.0]
            self._entries.pop(ip, None)
            self._entries[ip] = entry
        entry[1] += 1
        if self.shared is not None:
            self.shared(ip)
        return int(entry[1])

    def block(self, ip: str, seconds: float) -> None:
        """Refuse ``ip`` for ``seconds`` (the cluster says its failures reached the limit)."""
        if self.limit <= 0 or seconds <= 0:
            return
        now = self._clock()
        self._entries.pop(ip, None)
        # A window that ends in ``seconds`` and is already at the limit.
        self._entries[ip] = [now - self.window + min(seconds, self.window), float(self.limit)]

    def retry_after(self, ip: str) -> int:
        """0 if ``ip`` may try again, else whole seconds until its window ends."""
        if self.limit <= 0:
            return 0
        entry = self._entries.get(ip)
        if entry is None or entry[1] < self.limit:
            return 0
        left = entry[0] + self.window - self._clock()
        if left <= 0:
            del self._entries[ip]
            return 0
        return max(1, math.ceil(left))

    def _evict(self, now: float) -> None:
        expired = [ip for ip, (start, _) in self._entries.items() if now - start >= self.window]
        for ip in expired:
            del self._entries[ip]
        # Still full: drop the oldest quarter.
        if len(self._entries) >= self.max_entries:
            for ip in list(self._entries)[: max(1, self.max_entries // 4)]:
                del self._entries[ip]

    def __len__(self) -> int:
        return len(self._entries)
