"""Webhooks: event builders, signed bodies, and a sans-I/O delivery scheduler.

pusher-protocol.md "Webhooks": body ``{"time_ms", "events": [...]}`` with ``X-Pusher-Key``
and ``X-Pusher-Signature`` (hex HMAC-SHA256 of the raw body); non-2xx is retried with
backoff for up to 5 minutes; ``channel_vacated`` / ``member_removed`` wait ~3 s and are
cancelled by a quick re-occupy / re-join (so a page reload does not fire vacated+occupied).

``WebhookScheduler`` holds no timers and does no HTTP. The gateway drives it::

    scheduler.add(event, now)                  # from the hub, as things happen
    for delivery in scheduler.due(now):        # when now >= scheduler.next_deadline()
        body, headers = delivery.render(app.key, app.secret, time_ms=wall_clock_ms)
        POST delivery.webhook.url -> on non-2xx / network error: scheduler.failed(delivery, now)

``now`` is monotonic seconds; ``time_ms`` in the body is wall-clock milliseconds, taken at
each attempt (receivers such as the Python library reject bodies older than 5 minutes, so a
late retry must carry a fresh time and signature).
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .apps import WEBHOOK_EVENT_TYPES as _ALL_TYPES
from .apps import Webhook
from .signatures import webhook_signature

CHANNEL_OCCUPIED = "channel_occupied"
CHANNEL_VACATED = "channel_vacated"
MEMBER_ADDED = "member_added"
MEMBER_REMOVED = "member_removed"
CLIENT_EVENT = "client_event"
CACHE_MISS = "cache_miss"
SUBSCRIPTION_COUNT = "subscription_count"

_DELAYED = frozenset({CHANNEL_VACATED, MEMBER_REMOVED})
# An event of the key type cancels a pending delayed event of the value type.
_CANCELS = {CHANNEL_OCCUPIED: CHANNEL_VACATED, MEMBER_ADDED: MEMBER_REMOVED}


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    name: str
    channel: str
    user_id: str | None = None
    event: str | None = None  # client_event
    data: str | None = None  # client_event
    socket_id: str | None = None  # client_event
    subscription_count: int | None = None
    # Where the event came from when a cluster's outbox holds it (acknowledged once its
    # delivery is settled); never part of the body.
    ref: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "channel": self.channel}
        if self.event is not None:
            body["event"] = self.event
        if self.data is not None:
            body["data"] = self.data
        if self.socket_id is not None:
            body["socket_id"] = self.socket_id
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.subscription_count is not None:
            body["subscription_count"] = self.subscription_count
        return body


def channel_occupied(channel: str) -> WebhookEvent:
    return WebhookEvent(CHANNEL_OCCUPIED, channel)


def channel_vacated(channel: str) -> WebhookEvent:
    return WebhookEvent(CHANNEL_VACATED, channel)


def member_added(channel: str, user_id: str) -> WebhookEvent:
    return WebhookEvent(MEMBER_ADDED, channel, user_id=user_id)


def member_removed(channel: str, user_id: str) -> WebhookEvent:
    return WebhookEvent(MEMBER_REMOVED, channel, user_id=user_id)


def client_event(
    channel: str, event: str, data: str, socket_id: str, user_id: str | None = None
) -> WebhookEvent:
    """``user_id`` for client events on presence channels."""
    return WebhookEvent(
        CLIENT_EVENT, channel, user_id=user_id, event=event, data=data, socket_id=socket_id
    )


def cache_miss(channel: str) -> WebhookEvent:
    return WebhookEvent(CACHE_MISS, channel)


def subscription_count(channel: str, count: int) -> WebhookEvent:
    return WebhookEvent(SUBSCRIPTION_COUNT, channel, subscription_count=count)


def build_webhook_body(events: Iterable[WebhookEvent], time_ms: int) -> bytes:
    return orjson.dumps({"time_ms": int(time_ms), "events": [e.as_dict() for e in events]})


def webhook_headers(
    app_key: str, secret: str, body: bytes, extra: Iterable[tuple[str, str]] = ()
) -> tuple[tuple[str, str], ...]:
    """Content-Type, ``X-Pusher-Key``, ``X-Pusher-Signature``, then the webhook's own
    headers (which cannot override the first three)."""
    base = (
        ("Content-Type", "application/json"),
        ("X-Pusher-Key", app_key),
        ("X-Pusher-Signature", webhook_signature(secret, body)),
    )
    reserved = {k.lower() for k, _ in base}
    return base + tuple((k, v) for k, v in extra if k.lower() not in reserved)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST to make (a batch of events for one webhook), possibly a retry."""

    id: int
    webhook: Webhook
    events: tuple[WebhookEvent, ...]
    attempt: int  # 0 for the first try
    first_attempt_at: float  # monotonic time of the first try

    def render(
        self, app_key: str, secret: str, time_ms: int
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        body = build_webhook_body(self.events, time_ms)
        return body, webhook_headers(app_key, secret, body, self.webhook.headers)


class _Open:
    __slots__ = ("deadline", "events")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.events: list[WebhookEvent] = []


def retry_delays(base: float = 1.0, max_delay: float = 60.0, window: float = 300.0) -> list[float]:
    """The retry schedule: delay before retry n (doubling from ``base``, each capped at
    ``max_delay``) while the total since the first attempt stays within ``window``."""
    delays: list[float] = []
    total = 0.0
    delay = base
    while total + delay <= window:
        delays.append(delay)
        total += delay
        delay = min(delay * 2, max_delay)
    return delays


def _wanted_by(webhooks: Sequence[Webhook]) -> frozenset[str]:
    """The event names at least one of ``webhooks`` wants."""
    wanted: set[str] = set()
    for hook in webhooks:
        wanted |= hook.event_types or _ALL_TYPES
    return frozenset(wanted)


class WebhookScheduler:
    """Batching, delayed vacate/remove with cancellation, and retries for one app.

    Bounded: at most ``max_pending`` events wait (delayed + batched, counted once per
    webhook they go to) and at most ``max_retries_pending`` deliveries wait for a retry;
    beyond, the oldest are dropped and counted in ``dropped`` (a dead endpoint or a flood
    must not grow memory).
    """

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        batch_window: float = 0.25,
        max_batch_events: int = 100,
        delay: float = 3.0,
        retry_base: float = 1.0,
        retry_max_delay: float = 60.0,
        retry_window: float = 300.0,
        max_pending: int = 10_000,
        max_retries_pending: int = 1_000,
    ) -> None:
        if max_batch_events < 1 or max_pending < 1 or max_retries_pending < 1:
            raise ValueError("bounds must be positive")
        self.webhooks = tuple(webhooks)
        self.batch_window = batch_window
        self.max_batch_events = max_batch_events
        self.delay = delay
        self.retry_window = retry_window
        self.retry_delays = retry_delays(retry_base, retry_max_delay, retry_window)
        self.max_pending = max_pending
        self.max_retries_pending = max_retries_pending
        self.dropped = 0  # events lost to the bounds
        self.given_up = 0  # deliveries abandoned after the retry window
        self.cancelled = 0  # delayed events cancelled by a quick rejoin (pairs)
        # (name, channel, user_id) -> (release_at, event); FIFO because delay is constant.
        self._delayed: OrderedDict[tuple[str, str, str | None], tuple[float, WebhookEvent]] = (
            OrderedDict()
        )
        # Batches are keyed by the webhook itself, not its place in the list: a reload
        # that changes the list (``retarget``) leaves the batches already open intact.
        self._open: dict[Webhook, _Open] = {}  # webhook -> open batch
        # Full batches, flushed by the next due(): (webhook, events, ready since).
        self._ready: list[tuple[Webhook, list[WebhookEvent], float]] = []
        self._queued = 0  # events in _open and _ready
        self._retries: list[tuple[float, int, Delivery]] = []  # heap on retry time
        self._ids = itertools.count(1)
        self._wanted = _wanted_by(self.webhooks)

    def retarget(self, webhooks: Sequence[Webhook]) -> None:
        """Send the events queued from now on to ``webhooks`` (the app's after a reload).

        Batches already open or full, and deliveries waiting for a retry, still go where
        they were bound; delayed vacated/removed events go to the new list when released.
        """
        self.webhooks = tuple(webhooks)
        self._wanted = _wanted_by(self.webhooks)

    # -- input ---------------------------------------------------------------------------

    def add(self, event: WebhookEvent, now: float) -> None:
        """Queue ``event``: vacated/removed wait ``delay`` seconds; occupied/added cancel
        a waiting vacated/removed of the same channel (and user) and are dropped with it."""
        name = event.name
        cancels = _CANCELS.get(name)
        key_cancelled = (cancels, event.channel, event.user_id) if cancels else None
        if key_cancelled is not None and self._delayed.pop(key_cancelled, None) is not None:
            self.cancelled += 1
            return
        if name not in self._wanted:
            return
        if name in _DELAYED:
            key = (name, event.channel, event.user_id)
            self._delayed[key] = (now + self.delay, event)
            self._delayed.move_to_end(key)
            self._bound()
            return
        self._enqueue(event, now)

    def add_released(self, event: WebhookEvent, now: float) -> None:
        """Queue ``event`` for the next batch as is: its delay and a rejoin's cancellation
        were already decided elsewhere (a cluster's shared scheduler)."""
        if event.name in self._wanted:
            self._enqueue(event, now)

    def _enqueue(self, event: WebhookEvent, now: float) -> None:
        for hook in self.webhooks:
            if not hook.wants(event.name):
                continue
            batch = self._open.get(hook)
            if batch is None:
                batch = self._open[hook] = _Open(now + self.batch_window)
            batch.events.append(event)
            self._queued += 1
            if len(batch.events) >= self.max_batch_events:
                del self._open[hook]
                self._ready.append((hook, batch.events, now))
        self._bound()

    def _bound(self) -> None:
        while self._queued + len(self._delayed) > self.max_pending:
            self.dropped += 1
            if self._delayed:
                self._delayed.popitem(last=False)
                continue
            if self._ready:
                events = self._ready[0][1]
                events.pop(0)
                if not events:
                    self._ready.pop(0)
            else:
                hook, batch = min(self._open.items(), key=lambda item: item[1].deadline)
                batch.events.pop(0)
                if not batch.events:
                    del self._open[hook]
            self._queued -= 1

    # -- output --------------------------------------------------------------------------

    def due(self, now: float) -> list[Delivery]:
        """Deliveries to POST now: released delayed events, ripe batches, due retries."""
        delayed = self._delayed
        while delayed:
            key, (release_at, event) = next(iter(delayed.items()))
            if release_at > now:
                break
            del delayed[key]
            # Released events skip the batching window: they already waited.
            self._enqueue(event, now - self.batch_window)
        out: list[Delivery] = []
        for hook, events, _ in self._ready:
            out.append(self._delivery(hook, events, now))
        self._ready.clear()
        for hook in [h for h, b in self._open.items() if b.deadline <= now]:
            out.append(self._delivery(hook, self._open.pop(hook).events, now))
        retries = self._retries
        while retries and retries[0][0] <= now:
            out.append(heapq.heappop(retries)[2])
        return out

    def _delivery(self, hook: Webhook, events: list[WebhookEvent], now: float) -> Delivery:
        self._queued -= len(events)
        return Delivery(next(self._ids), hook, tuple(events), 0, now)

    def failed(self, delivery: Delivery, now: float) -> bool:
        """The POST failed (non-2xx or network error). Schedules the next attempt and
        returns True, or returns False when the retry window is spent (given up)."""
        if delivery.attempt >= len(self.retry_delays):
            self.given_up += 1
            return False
        retry_at = now + self.retry_delays[delivery.attempt]
        if retry_at - delivery.first_attempt_at > self.retry_window:
            self.given_up += 1
            return False
        retry = Delivery(
            delivery.id,
            delivery.webhook,
            delivery.events,
            delivery.attempt + 1,
            delivery.first_attempt_at,
        )
        heapq.heappush(self._retries, (retry_at, retry.id, retry))
        if len(self._retries) > self.max_retries_pending:
            # Drop the retry due last: the newest failure of a dead endpoint.
            victim = max(self._retries, key=lambda r: (r[0], r[1]))
            self._retries.remove(victim)
            heapq.heapify(self._retries)
            self.dropped += len(victim[2].events)
            return victim[2].id != retry.id
        return True

    def next_deadline(self) -> float | None:
        """Earliest time ``due`` has something to return; None when idle. An ``add`` can
        make it earlier: re-read it after every ``add``/``due``/``failed``."""
        times: list[float] = [ready_at for _, _, ready_at in self._ready]
        if self._delayed:
            times.append(next(iter(self._delayed.values()))[0])
        times.extend(b.deadline for b in self._open.values())
        if self._retries:
            times.append(self._retries[0][0])
        return min(times) if times else None

    def pending(self) -> int:
        """Events waiting (delayed or batched) plus events in scheduled retries."""
        return self._queued + len(self._delayed) + sum(len(r[2].events) for r in self._retries)
