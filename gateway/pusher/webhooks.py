"""Webhook delivery: the I/O side of ``protocol.pusher.webhooks.WebhookScheduler``.

The engine calls ``WebhookDispatcher.emit(app, event)`` from the WebSocket hot path. It is
synchronous and cheap: the event goes into the app's scheduler (bounded, it drops the
oldest beyond ``max_pending``) and at most one timer is re-armed. Nothing else happens
there, so a slow or dead webhook endpoint can never slow WebSocket traffic.

One timer (``loop.call_at`` at the earliest ``next_deadline()`` of all schedulers) pulls
due deliveries out of the schedulers: batches, vacate/remove events released after their
delay (~3 s, cancelled by a quick rejoin inside the scheduler), and retries. Deliveries
wait in small per-URL queues (bounded in total: the oldest are dropped and counted) and
are POSTed by at most ``max_concurrency`` tasks, ``max_per_host`` per URL, through one
pooled ``aiohttp.ClientSession`` (no cookies kept, no redirects followed, ``timeout``
seconds per attempt). A non-2xx answer or an error goes back to the scheduler, which
retries with backoff for up to 5 minutes; every attempt is re-signed with a fresh
``time_ms`` (pusher-protocol.md "Webhooks").

Shutdown (``stop``) releases everything still waiting, delayed events included, gives
the deliveries ``flush_timeout`` (~1 s) to complete, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.metrics import Metric
from protocol.pusher.apps import App, AppStore
from protocol.pusher.webhooks import Delivery, WebhookEvent, WebhookScheduler

log = logging.getLogger("uvgate.pusher.webhooks")

MAX_ANSWER = 65536  # bytes of a webhook endpoint's answer read before the connection is cut
DROP_LOG_INTERVAL = 10.0  # seconds between two "webhook events dropped" warnings
_EVENT_FIELDS = ("user_id", "event", "data", "socket_id", "subscription_count")
_GAUGES = frozenset({"pending", "waiting", "in_flight"})
_HELP = {
    "emitted": "Webhook events emitted",
    "delivered": "Webhook deliveries answered 2xx",
    "failures": "Webhook delivery attempts answered non-2xx or failed",
    "given_up": "Webhook deliveries given up after the retry window",
    "cancelled": "Delayed webhook events cancelled by a quick rejoin",
    "dropped": "Webhook events dropped from the bounded queues",
    "pending": "Webhook events waiting in the schedulers",
    "waiting": "Webhook deliveries waiting for a free connection",
    "in_flight": "Webhook deliveries being sent",
    "emit_errors": "Webhook events that failed to queue",
}


def any_webhooks(store: AppStore) -> bool:
    """True if an app of ``store`` has webhooks (True when the store cannot be listed:
    a dynamic store may hold such apps; an idle dispatcher costs nothing)."""
    if not isinstance(store, Iterable):
        return True
    return any(app.webhooks for app in store)


def as_event(event: WebhookEvent | Mapping[str, Any]) -> WebhookEvent:
    """The engine may pass a ``WebhookEvent`` or its dict form (``as_dict()``)."""
    if type(event) is WebhookEvent:
        return event
    assert isinstance(event, Mapping)
    return WebhookEvent(
        str(event["name"]), str(event["channel"]), **{k: event.get(k) for k in _EVENT_FIELDS}
    )


@dataclass(slots=True, eq=False)  # hashed by identity (kept in a set)
class _AppHooks:
    app: App  # the latest App seen for this id: its key and secret sign the bodies
    scheduler: WebhookScheduler


@dataclass(frozen=True, slots=True)
class _Job:
    hooks: _AppHooks
    delivery: Delivery


class WebhookDispatcher:
    """The webhook sink of the Pusher service: ``emit(app, event)`` (sync, O(1), never
    raises). A gateway component: started and stopped (flushed, then closed) with it.

    ``scheduler_options`` go to every ``WebhookScheduler`` (``delay``, ``batch_window``,
    ``retry_base``, ``retry_max_delay``, ``retry_window``, ``max_pending``...); tests use
    a short ``delay`` instead of sleeping 3 s. ``configure`` changes them later (for
    schedulers created after the call, and the timing of existing ones).
    """

    def __init__(
        self,
        store: AppStore,
        *,
        max_concurrency: int = 32,
        max_per_host: int = 8,
        max_waiting: int = 1000,
        timeout: float = 5.0,
        flush_timeout: float = 1.0,
        **scheduler_options: Any,
    ) -> None:
        if max_concurrency < 1 or max_per_host < 1 or max_waiting < 1:
            raise ValueError("bounds must be positive")
        self.store = store
        self.max_concurrency = max_concurrency
        self.max_per_host = max_per_host
        self.max_waiting = max_waiting
        self.timeout = timeout
        self.flush_timeout = flush_timeout
        self.scheduler_options: dict[str, Any] = dict(scheduler_options)
        WebhookScheduler([], **self.scheduler_options)  # fail now on a bad option
        self._apps: dict[str, _AppHooks] = {}
        self._active: set[_AppHooks] = set()  # schedulers with something pending
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[str, deque[_Job]] = {}  # per URL, waiting for a free slot
        self._waiting = 0
        self._in_flight = 0
        self._per_url: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = False
        # counters (see ``stats``)
        self.emitted = 0
        self.delivered = 0  # deliveries answered 2xx
        self.failures = 0  # attempts answered non-2xx or failed
        self.dropped_waiting = 0  # events dropped from the bounded delivery queues
        self.emit_errors = 0
        # Events from a cluster's outbox (``emit_released``): ref -> deliveries still to
        # settle (one per webhook that wants the event); ``on_settled(ref)`` at zero.
        self.on_settled: Callable[[str], None] | None = None
        self._unsettled: dict[str, int] = {}
        self._drops_logged = 0
        self._drops_logged_at = -math.inf

    # -- configuration and stats -------------------------------------------------------------

    def configure(self, **scheduler_options: Any) -> None:
        self.scheduler_options.update(scheduler_options)
        WebhookScheduler([], **self.scheduler_options)
        for hooks in self._apps.values():
            hooks.scheduler = self._reconfigured(hooks.scheduler)

    def _reconfigured(self, old: WebhookScheduler) -> WebhookScheduler:
        if old.pending():
            # Timing of a busy scheduler: only the plain attributes can change in place.
            for name in ("delay", "batch_window"):
                if name in self.scheduler_options:
                    setattr(old, name, self.scheduler_options[name])
            return old
        return WebhookScheduler(old.webhooks, **self.scheduler_options)

    def stats(self) -> dict[str, int]:
        schedulers = [h.scheduler for h in self._apps.values()]
        return {
            "emitted": self.emitted,
            "delivered": self.delivered,
            "failures": self.failures,
            "given_up": sum(s.given_up for s in schedulers),
            "cancelled": sum(s.cancelled for s in schedulers),
            "dropped": self.dropped(),
            "pending": sum(s.pending() for s in schedulers),
            "waiting": self._waiting,
            "in_flight": self._in_flight,
            "emit_errors": self.emit_errors,
        }

    def metrics(self) -> list[Metric]:
        out = []
        for name, value in self.stats().items():
            if name in _GAUGES:
                out.append(
                    Metric.single(f"uvgate_pusher_webhook_{name}", "gauge", _HELP[name], value)
                )
            else:
                out.append(
                    Metric.single(
                        f"uvgate_pusher_webhook_{name}_total", "counter", _HELP[name], value
                    )
                )
        return out

    def dropped(self) -> int:
        return self.dropped_waiting + sum(h.scheduler.dropped for h in self._apps.values())

    # -- the sink (hot path) -----------------------------------------------------------------

    def emit(self, app: App, event: WebhookEvent | Mapping[str, Any]) -> None:
        """Queue a webhook event of ``app``. Synchronous and O(1); never raises."""
        if not app.webhooks or self._closed:
            return
        try:
            hooks = self._hooks_of(app)
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            hooks.scheduler.add(as_event(event), loop.time())
            self.emitted += 1
            self._watch(hooks)
        except Exception:
            # The hot path must not fail because of a webhook; count it, log it.
            self.emit_errors += 1
            if self.emit_errors == 1 or self.emit_errors % 1000 == 0:
                log.exception("webhook emit failed (%d so far)", self.emit_errors)

    def emit_released(self, app: App, event: WebhookEvent) -> None:
        """Queue an event whose delay and cancellation a cluster already decided (from its
        outbox); ``on_settled(event.ref)`` once every delivery of it succeeded or was
        given up. Synchronous, never raises."""
        try:
            hooks = self._hooks_of(app)
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            wanted = sum(1 for hook in app.webhooks if hook.wants(event.name))
            if event.ref is not None:
                if wanted:
                    self._unsettled[event.ref] = wanted
                elif self.on_settled is not None:
                    self.on_settled(event.ref)
            if not wanted:
                return
            hooks.scheduler.add_released(event, loop.time())
            self.emitted += 1
            self._watch(hooks)
        except Exception:
            self.emit_errors += 1
            log.exception("webhook emit failed")

    def _hooks_of(self, app: App) -> _AppHooks:
        hooks = self._apps.get(app.id)
        if hooks is None:
            hooks = self._apps[app.id] = _AppHooks(
                app, WebhookScheduler(app.webhooks, **self.scheduler_options)
            )
        elif hooks.app is not app:
            # A reload replaced the app: sign with its current secret, post to its
            # current webhooks (what is already batched goes where it was bound).
            if app.webhooks != hooks.app.webhooks:
                hooks.scheduler.retarget(app.webhooks)
            hooks.app = app
        return hooks

    def _watch(self, hooks: _AppHooks) -> None:
        """After an add: the timer fires at the app scheduler's next deadline, if earlier."""
        deadline = hooks.scheduler.next_deadline()
        if deadline is not None:
            self._active.add(hooks)
            if deadline < self._timer_at:
                self._arm(deadline)

    def _settle(self, delivery: Delivery) -> None:
        """A delivery is done for good (2xx, or given up): acknowledge its events."""
        on_settled = self.on_settled
        for event in delivery.events:
            ref = event.ref
            if ref is None:
                continue
            left = self._unsettled.get(ref, 1) - 1
            if left > 0:
                self._unsettled[ref] = left
                continue
            self._unsettled.pop(ref, None)
            if on_settled is not None:
                on_settled(ref)

    # -- timer ----------------------------------------------------------------------------------

    def _arm(self, deadline: float) -> None:
        loop = self._loop
        if loop is None or self._closing:
            return  # closing: stop drives what is left, a timer would only spin
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._fire)

    def _rearm(self) -> None:
        earliest = math.inf
        for hooks in list(self._active):
            deadline = hooks.scheduler.next_deadline()
            if deadline is None:
                self._active.discard(hooks)
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._arm(earliest)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        # A timer may run a hair before its time (clock granularity): treat it as on time,
        # or the deadline would be re-armed in the past and spin.
        now = max(loop.time(), self._timer_at)
        self._timer = None
        self._timer_at = math.inf
        try:
            if not self._closing:
                self._collect(now)
                self._pump()
            self._log_drops(now)
        finally:
            self._rearm()

    def _collect(self, now: float) -> None:
        for hooks in list(self._active):
            for delivery in hooks.scheduler.due(now):
                self._enqueue(_Job(hooks, delivery))

    def _log_drops(self, now: float) -> None:
        dropped = self.dropped()
        if dropped > self._drops_logged and now - self._drops_logged_at >= DROP_LOG_INTERVAL:
            log.warning(
                "webhook events dropped: %d since the last report (%d in all); "
                "an endpoint is too slow or down",
                dropped - self._drops_logged,
                dropped,
            )
            self._drops_logged = dropped
            self._drops_logged_at = now

    # -- bounded delivery queues -------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        url = job.delivery.webhook.url
        queue = self._queues.get(url)
        if queue is None:
            queue = self._queues[url] = deque()
        queue.append(job)
        self._waiting += 1
        if self._waiting > self.max_waiting:
            # Drop the oldest delivery of the longest queue: the endpoint falling behind.
            longest = max(self._queues.values(), key=len)
            victim = longest.popleft()
            self._waiting -= 1
            self.dropped_waiting += len(victim.delivery.events)

    def _pump(self) -> None:
        """Start deliveries while there are free slots (global and per URL)."""
        if self._session is None:
            return  # not started yet: the start hook pumps
        for url in list(self._queues):
            queue = self._queues[url]
            while (
                queue
                and self._in_flight < self.max_concurrency
                and self._per_url.get(url, 0) < self.max_per_host
            ):
                job = queue.popleft()
                self._waiting -= 1
                self._in_flight += 1
                self._per_url[url] = self._per_url.get(url, 0) + 1
                task = asyncio.ensure_future(self._deliver(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if not queue:
                del self._queues[url]

    async def _deliver(self, job: _Job) -> None:
        delivery = job.delivery
        app = job.hooks.app
        url = delivery.webhook.url
        ok = False
        try:
            session = self._session
            assert session is not None
            body, headers = delivery.render(app.key, app.secret, int(time.time() * 1000))
            async with session.post(
                url, data=body, headers=list(headers), allow_redirects=False
            ) as response:
                ok = 200 <= response.status < 300
                status: object = response.status
                # Read a short answer to the end so the pooled connection is reused;
                # a long one is cut (the connection is then closed, not reused).
                seen = 0
                while seen <= MAX_ANSWER and (chunk := await response.content.read(MAX_ANSWER)):
                    seen += len(chunk)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status = type(exc).__name__
        except Exception as exc:
            # Not a network failure (a bad URL, a bug): retried like one, but said loudly.
            log.exception("webhook delivery to %s failed", url)
            status = type(exc).__name__
        finally:
            self._in_flight -= 1
            left = self._per_url[url] - 1
            if left:
                self._per_url[url] = left
            else:
                del self._per_url[url]
        if ok:
            self.delivered += 1
            self._settle(delivery)
        else:
            self.failures += 1
            if not self._closing:
                loop = self._loop
                assert loop is not None
                if not job.hooks.scheduler.failed(delivery, loop.time()):
                    log.warning(
                        "webhook delivery given up after the retry window",
                        extra={"fields": {"url": url, "events": len(delivery.events)}},
                    )
                    self._settle(delivery)
                else:
                    self._active.add(job.hooks)
                    self._rearm()
            log.debug("webhook delivery to %s failed: %s", url, status)
        if not self._closing:
            self._pump()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """The pooled HTTP client, then any deliveries already due."""
        self._loop = asyncio.get_running_loop()
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_concurrency, limit_per_host=self.max_per_host
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": "uvgate-webhooks"},
            )
        self._rearm()
        self._pump()

    async def stop(self) -> None:
        """Best-effort flush within ``flush_timeout``, then close. The gateway stops it
        after the connections are closed, so their vacate/remove events are here."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
        if self._session is not None:
            # Release everything, delayed events and scheduled retries included: one
            # last attempt each, no retries from now on.
            self._collect(loop.time() + 1e9)
            self._closing = True
            deadline = loop.time() + self.flush_timeout
            while (self._waiting or self._tasks) and loop.time() < deadline:
                self._pump()
                if self._tasks:
                    # Wake on each completion: a freed slot starts a waiting delivery.
                    await asyncio.wait(
                        list(self._tasks),
                        timeout=max(0.0, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
        self._closing = self._closed = True
        cut = list(self._tasks)
        for task in cut:
            task.cancel()
        if cut:
            await asyncio.gather(*cut, return_exceptions=True)
        pending = sum(h.scheduler.pending() for h in self._apps.values())
        if cut or self._waiting or pending:
            log.warning(
                "webhooks not delivered at shutdown: %d deliveries cut off, %d waiting, "
                "%d events pending",
                len(cut),
                self._waiting,
                pending,
            )
        session, self._session = self._session, None
        if session is not None:
            await session.close()
