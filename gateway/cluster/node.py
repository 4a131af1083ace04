"""This process as a node of a cluster: its claim, its heartbeat, the reaper, health.

* **Claim.** A node is known by its key, ``node_id * 100 + worker`` (the prefix of its
  connection ids). At start it claims ``P:node:KEY`` (SET NX with a lease); a second live
  node with the same key is refused with a clear message. Without ``--node-id`` the first
  free id from a hostname-derived start is taken.
* **Heartbeat.** Every ``HEARTBEAT`` s the lease is renewed and ``P:nodes`` stamped. A
  lease found gone (this node was cut off long enough to be reaped) is claimed again and
  everything this node holds is registered again (``RedisEngine.resync``).
* **Reaper.** Every node looks for nodes silent for ``STALE`` s whose lease is gone, and
  undoes what they held (presence members removed with ``member_removed``, counts
  corrected, ``channel_vacated`` scheduled) through the ``reap`` script, which re-checks
  the staleness atomically, so two reapers never both act. Their webhook events are taken
  over.
* **Health.** The node is *ready* when commands and PUB/SUB both work and its state is
  registered; after any outage it registers again before saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
from typing import Literal

from gateway.cluster.engine import RedisEngine
from gateway.cluster.link import Link, Unavailable
from gateway.cluster.outbox import Outbox
from gateway.cluster.pubsub import Subscriber
from gateway.cluster.relay import NativeRelay
from gateway.metrics import Metric
from gateway.tasks import cancel_and_wait
from protocol.ids import MAX_NODE_ID, MAX_WORKERS

log = logging.getLogger("uvgate.cluster")

HEARTBEAT = 2.0
LEASE = 10.0  # seconds a claim lives without a heartbeat
STALE = 10.0  # seconds without a heartbeat before a node may be reaped
HEALTH = 0.5  # seconds between two pings of the command link
REAP_BATCH = 500


class ClusterStartError(ConnectionError):
    """This process cannot join the cluster (an OSError: the CLI says it in one line)."""


class NodeConflict(ClusterStartError):
    """Another live node of the cluster has this node id."""


class ClusterNode:
    def __init__(
        self,
        link: Link,
        subscriber: Subscriber,
        engine: RedisEngine,
        relay: NativeRelay,
        *,
        worker: int = 0,
    ) -> None:
        self.link = link
        self.subscriber = subscriber
        self.engine = engine
        self.relay = relay
        self.worker = worker
        self.node_id = -1
        self.key = ""
        self.outbox: Outbox | None = None
        self.reaped = 0
        self.lease_losses = 0
        self._claim_value = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._tasks: list[asyncio.Task[None]] = []
        self._resyncing: asyncio.Task[None] | None = None
        self._synced = False

    # ------------------------------------------------------------------ claim
    async def claim(self, node_id: int | None, hint: int) -> int:
        """Claim this node's key; returns the node id. ``NodeConflict`` if ``node_id``
        is taken; ``ClusterStartError`` if Redis cannot be reached."""
        if not await self.link.ping():
            raise ClusterStartError(f"cannot reach Redis at {_safe(self.link.url)}")
        self.link.up = True
        candidates = (
            [node_id]
            if node_id is not None
            else [(hint + i) % (MAX_NODE_ID + 1) for i in range(MAX_NODE_ID + 1)]
        )
        for candidate in candidates:
            key = str(candidate * MAX_WORKERS + self.worker)
            if int(await self.link.call("claim", key, self._claim_value, int(LEASE * 1000))):
                self.node_id, self.key = candidate, key
                self.engine.node = key
                self.relay.attach(key)
                return candidate
        if node_id is not None:
            raise NodeConflict(
                f"node id {node_id} (worker {self.worker}) is already live in this cluster "
                f"(prefix {self.link.prefix!r}): give each node its own --node-id, or none"
            )
        raise NodeConflict("no free node id left in this cluster")

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._heartbeat()),
            asyncio.ensure_future(self._reaper()),
            asyncio.ensure_future(self._health()),
        ]
        self.subscriber.wanted.update(self.relay.channels())
        self.subscriber.start()
        if self.outbox is not None:
            self.outbox.start()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._resyncing is not None:
            self._resyncing.cancel()
        if self.outbox is not None:
            await self.outbox.stop()
        await self.subscriber.stop()
        with contextlib.suppress(Unavailable):
            await self.link.call("release", self.key, self._claim_value)
            # Whatever is still registered for this node (an undo that did not make it
            # out in time) goes now, instead of when the others find the node stale.
            while (
                await self.link.call("reap", self.key, 0, REAP_BATCH, self.engine.delay_ms)
                == b"more"
            ):
                pass
        await self.link.close()

    @property
    def ready(self) -> bool:
        return self.link.up and self.subscriber.up and self._synced

    # ------------------------------------------------------------------ health
    def on_state(self, up: bool) -> None:
        """PUB/SUB connection up or down (from the subscriber)."""
        self._changed()

    def _changed(self) -> None:
        engine = self.engine
        if self.link.up and self.subscriber.up:
            if not self._synced and (self._resyncing is None or self._resyncing.done()):
                self._resyncing = asyncio.ensure_future(self._resync())
        else:
            self._synced = False
            engine.synced = False

    async def _resync(self) -> None:
        engine = self.engine
        try:
            await engine.resync()
        except Unavailable as exc:
            log.warning("registering this node's state again failed: %s", exc)
            return
        except Exception:
            log.exception("registering this node's state again failed")
            return
        if self.link.up and self.subscriber.up:
            self._synced = True
            engine.synced = True
            if engine.stats.resyncs > 1:
                log.info("cluster state registered again", extra={"fields": {"node": self.key}})

    async def _health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH)
            ok = await self.link.ping()
            if ok and not self.link.up:
                self.link.up = True
                log.info("Redis reachable again")
            self._changed()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                alive = int(
                    await self.link.call(
                        "heartbeat", self.key, self._claim_value, int(LEASE * 1000)
                    )
                )
                if not alive:
                    await self._reclaim()
            except Unavailable:
                continue

    async def _reclaim(self) -> None:
        """Our lease was gone: the cluster may have reaped us. Claim it and register all."""
        self.lease_losses += 1
        if int(await self.link.call("claim", self.key, self._claim_value, int(LEASE * 1000))):
            log.warning("this node's lease had expired: claimed again, registering its state")
            self._synced = False
            self.engine.synced = False
            self._changed()
        else:
            log.error("node key %s was taken by another node: this node is not ready", self.key)
            self._synced = False
            self.engine.synced = False

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            with contextlib.suppress(Unavailable):
                await self.reap()

    async def reap(self) -> int:
        """Undo the state of every dead node; returns how many were reaped."""
        nodes_key = f"{self.link.prefix}:nodes"
        now_ms = int((await self.link.redis.time())[0]) * 1000
        stale = await self.link.redis.zrangebyscore(nodes_key, "-inf", now_ms - int(STALE * 1000))
        count = 0
        for raw in stale:
            node = raw.decode() if isinstance(raw, bytes) else str(raw)
            if node == self.key:
                continue
            while True:
                status = await self.link.call(
                    "reap", node, int(STALE * 1000), REAP_BATCH, self.engine.delay_ms
                )
                if status != b"more":
                    break
            if status == b"done":
                count += 1
                self.reaped += 1
                log.warning("node %s stopped heartbeating: its state was removed", node)
                if self.outbox is not None:
                    await self.outbox.take_over(node)
        return count

    def metrics(self) -> list[Metric]:
        stats, relay = self.engine.stats, self.relay
        rows: list[tuple[str, Literal["counter", "gauge"], str, float]] = [
            ("uvgate_cluster_ready", "gauge", "1 when this node is part of the cluster", int(self.ready)),
            ("uvgate_cluster_reconnects_total", "counter", "Redis PUB/SUB reconnections", self.subscriber.reconnects),
            ("uvgate_cluster_reaped_nodes_total", "counter", "Dead nodes whose state this node removed", self.reaped),
            ("uvgate_cluster_lease_losses_total", "counter", "Times this node's lease had expired (it was cut off)", self.lease_losses),
            ("uvgate_cluster_messages_sent_total", "counter", "Messages this node published", stats.sent),
            ("uvgate_cluster_messages_received_total", "counter", "Messages this node received from Redis", stats.received),
            ("uvgate_cluster_messages_dropped_total", "counter", "Cross-node messages lost while Redis was unreachable (delivered on this node only)", stats.dropped + relay.dropped),
            ("uvgate_cluster_bad_messages_total", "counter", "Messages on uvgate channels that were not uvgate's", stats.bad_messages),
            ("uvgate_cluster_resyncs_total", "counter", "Times this node registered its state in Redis", stats.resyncs),
            ("uvgate_cluster_channels", "gauge", "Redis PUB/SUB channels this node listens to", self.engine.listening()),
            ("uvgate_cluster_native_forwarded_total", "counter", "Registry operations this node sent to other nodes", relay.forwarded),
            ("uvgate_cluster_native_applied_total", "counter", "Registry operations other nodes sent to this node", relay.applied),
        ]  # fmt: skip
        return [Metric.single(*row) for row in rows]


def _safe(url: str) -> str:
    """The URL without its password (it goes to logs and stderr)."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)
