"""Webhooks of a cluster: decided once in Redis, delivered by one node, never lost.

The state script writes every webhook event a transition decides into a Redis stream,
``P:wh:outbox`` (vacated and member_removed first wait in ``P:wh:delayed``, from which
``move_due`` moves them when due unless a rejoin on any node cancelled them). Every node
reads the stream in one consumer group: each event goes to exactly one node, whose
``WebhookDispatcher`` batches, signs, posts and retries it, and acknowledges it (XACK,
XDEL) only once the delivery is settled. Events a node held when it died stay pending in
the group: the reaper hands them to a live node (``take_over``), and anything idle past
the retry window is claimed by whoever sees it (``XAUTOCLAIM``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gateway.cluster.link import Link, Unavailable
from gateway.pusher.webhooks import WebhookDispatcher
from gateway.tasks import cancel_and_wait
from protocol.pusher.apps import App
from protocol.pusher.webhooks import WebhookEvent

log = logging.getLogger("uvgate.cluster")

GROUP = "webhooks"
BATCH = 100
MOVE_INTERVAL = 0.5  # seconds between two moves of due delayed events
CLAIM_IDLE_MS = 330_000  # past the dispatcher's 5-minute retry window


def event_of(raw: bytes, ref: str) -> WebhookEvent | None:
    try:
        data = orjson.loads(raw)
        return WebhookEvent(
            str(data["name"]),
            str(data["channel"]),
            user_id=data.get("user_id"),
            event=data.get("event"),
            data=data.get("data"),
            socket_id=data.get("socket_id"),
            ref=ref,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class Outbox:
    def __init__(
        self,
        link: Link,
        node: str,
        dispatcher: WebhookDispatcher,
        apps: Callable[[str], App | None],
    ) -> None:
        self.link = link
        self.node = node
        self.dispatcher = dispatcher
        self.apps = apps
        self.stream = f"{link.prefix}:wh:outbox"
        # Its own connection: XREADGROUP blocks it for up to a second.
        self.reader: Redis = Redis.from_url(
            link.url, socket_timeout=5.0, socket_connect_timeout=1.0, decode_responses=False
        )
        self.taken = 0  # events this node took from the outbox
        self.acked = 0
        self._acks: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        dispatcher.on_settled = self._settled

    def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._consume()),
            asyncio.ensure_future(self._move()),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._flush_acks()
        await self.reader.aclose()

    # ------------------------------------------------------------------ reading
    async def _consume(self) -> None:
        created = False
        claimed_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not created:
                    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                        await self.reader.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
                    created = True
                if loop.time() - claimed_at > 60:
                    claimed_at = loop.time()
                    await self._autoclaim()
                reply: Any = await self.reader.xreadgroup(
                    GROUP, self.node, {self.stream: ">"}, count=BATCH, block=1000
                )
                for _, entries in reply or ():
                    self._take(entries)
                await self._flush_acks()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.debug("webhook outbox read failed: %s", exc)
                created = False
                await asyncio.sleep(0.5)

    def _take(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for entry_id, fields in entries:
            ref = entry_id.decode()
            app = self.apps(fields.get(b"a", b"").decode())
            event = event_of(fields.get(b"e", b""), ref)
            if app is None or event is None or not app.webhooks:
                self._acks.append(ref)  # not ours to deliver (or not one of ours at all)
                continue
            self.taken += 1
            self.dispatcher.emit_released(app, event)

    async def _autoclaim(self) -> None:
        """Events left idle past the retry window (their node died mid-retry)."""
        start = "0-0"
        while True:
            reply: Any = await self.reader.xautoclaim(
                self.stream, GROUP, self.node, CLAIM_IDLE_MS, start_id=start, count=BATCH
            )
            start, entries = reply[0], reply[1]
            self._take([e for e in entries if e and e[1]])
            if start in (b"0-0", "0-0"):
                return

    async def take_over(self, dead: str) -> None:
        """The events a dead node had taken and not settled: this node delivers them."""
        try:
            pending: Any = await self.reader.xpending_range(
                self.stream, GROUP, min="-", max="+", count=10_000, consumername=dead
            )
            ids: Any = [p["message_id"] for p in pending]
            if ids:
                entries: Any = await self.reader.xclaim(self.stream, GROUP, self.node, 0, ids)
                self._take([e for e in entries if e and e[1]])
            with contextlib.suppress(ResponseError):
                await self.reader.xgroup_delconsumer(self.stream, GROUP, dead)
        except (RedisError, OSError) as exc:
            log.warning("taking over the webhooks of node %s failed: %s", dead, exc)

    # ---------------------------------------------------------------- settling
    def _settled(self, ref: str) -> None:
        # Acknowledged at once (in one batch per turn of the loop): an event delivered but
        # not yet acknowledged when this node dies is delivered again by another.
        if not self._acks:
            asyncio.get_running_loop().call_soon(self._flush_soon)
        self._acks.append(ref)

    def _flush_soon(self) -> None:
        self._tasks.append(asyncio.ensure_future(self._flush_acks()))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _flush_acks(self) -> None:
        acks, self._acks = self._acks, []
        if not acks:
            return
        try:
            async with self.link.redis.pipeline(transaction=False) as pipe:
                pipe.xack(self.stream, GROUP, *acks)
                pipe.xdel(self.stream, *acks)
                await pipe.execute()
            self.acked += len(acks)
        except (RedisError, OSError):
            self._acks[:0] = acks  # again next time

    # ---------------------------------------------------------------- delayed
    async def _move(self) -> None:
        while True:
            await asyncio.sleep(MOVE_INTERVAL)
            with contextlib.suppress(Unavailable):
                while int(await self.link.call("move_due", BATCH)) == BATCH:
                    pass

    def stats(self) -> dict[str, Any]:
        return {"taken": self.taken, "acked": self.acked, "unsettled": len(self._acks)}
