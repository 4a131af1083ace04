"""A coarse timer wheel for per-connection deadlines (handshake, auth, close).

One ``loop.call_later`` handle per connection would cost a few hundred bytes and
a heap operation each, for deadlines that are almost always cancelled. Instead
connections go into one-tick buckets keyed by their deadline, and a single
periodic sweep fires the expired buckets. A deadline fires between 0 and one
tick late, which is fine for timeouts measured in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol


class HasDeadline(Protocol):
    deadline_slot: int

    def on_deadline(self) -> None: ...


class DeadlineWheel:
    __slots__ = ("_buckets", "_next", "tick")

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self._buckets: dict[int, set[HasDeadline]] = {}
        self._next = 0  # first slot not yet fired

    def slot_for(self, when: float) -> int:
        return max(math.ceil(when / self.tick), self._next)

    def add(self, item: HasDeadline, when: float) -> None:
        """Fire ``item.on_deadline()`` at (or at most one tick after) loop time ``when``."""
        self.discard(item)
        slot = self.slot_for(when)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
        bucket.add(item)
        item.deadline_slot = slot

    def discard(self, item: HasDeadline) -> None:
        slot = item.deadline_slot
        if slot:
            item.deadline_slot = 0
            bucket = self._buckets.get(slot)
            if bucket is not None:
                bucket.discard(item)
                if not bucket:
                    del self._buckets[slot]

    def expire(self, now: float, on_error: Callable[[BaseException], None]) -> int:
        """Fire every deadline at or before ``now``; return how many fired."""
        current = math.floor(now / self.tick)
        fired = 0
        if not self._buckets:
            self._next = current + 1
            return 0
        for slot in sorted(s for s in self._buckets if s <= current):
            for item in self._buckets.pop(slot):
                item.deadline_slot = 0
                fired += 1
                try:
                    item.on_deadline()
                except Exception as exc:  # one bad callback must not stop the sweep
                    on_error(exc)
        self._next = current + 1
        return fired

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())
