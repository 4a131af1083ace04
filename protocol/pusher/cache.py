"""Cache channels: the last event triggered through the HTTP API, kept for a TTL.

pusher-protocol.md "Channels": keep it even with no subscribers; on subscribe send it, else
``pusher:cache_miss`` (and a ``cache_miss`` webhook). Client events are never cached.

One ``EventCache`` per app (one TTL). Entries live in insertion order and ``put`` moves a
channel to the end, so with a single TTL the oldest entry is always the first to expire:
``sweep`` and the count bound only ever look at the front. Time is the caller's ``now``
(monotonic seconds); nothing here reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_TTL = 1800.0  # 30 minutes, the documented maximum
DEFAULT_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class CachedEvent:
    event: str
    data: str
    frame: bytes  # the encoded channel event, sent as is to a new subscriber
    expires_at: float

    def ttl_left(self, now: float) -> float:
        return max(0.0, self.expires_at - now)

    def info(self, now: float) -> dict[str, str | int]:
        """The ``cache`` attribute of ``GET /channels/{c}?info=cache``:
        ``{"data": str, "ttl": whole seconds left}``."""
        return {"data": self.data, "ttl": int(self.ttl_left(now))}


class EventCache:
    __slots__ = ("_entries", "max_entries", "ttl")

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CachedEvent] = OrderedDict()

    def put(self, channel: str, event: str, data: str, frame: bytes, now: float) -> CachedEvent:
        """Remember the last event of ``channel``; evicts the oldest past ``max_entries``."""
        entry = CachedEvent(event, data, frame, now + self.ttl)
        entries = self._entries
        entries[channel] = entry
        entries.move_to_end(channel)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        return entry

    def get(self, channel: str, now: float) -> CachedEvent | None:
        """The cached event, or None if there is none or it expired (then dropped)."""
        entry = self._entries.get(channel)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[channel]
            return None
        return entry

    def delete(self, channel: str) -> None:
        self._entries.pop(channel, None)

    def sweep(self, now: float) -> int:
        """Drop expired entries; returns how many. Cost is O(expired)."""
        entries = self._entries
        dropped = 0
        while entries:
            channel, entry = next(iter(entries.items()))
            if entry.expires_at > now:
                break
            del entries[channel]
            dropped += 1
        return dropped

    def next_expiry(self) -> float | None:
        """When the next entry expires (for the gateway's sweep timer)."""
        if not self._entries:
            return None
        return next(iter(self._entries.values())).expires_at

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, channel: object) -> bool:
        return channel in self._entries
