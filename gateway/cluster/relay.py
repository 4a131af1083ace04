"""The native registry across nodes, and the per-IP failure limit across nodes.

A connection id names its node (``protocol.ids``: ``node * 100 + worker``), so a send or a
close by id goes to that node's own PUB/SUB channel, ``P:node:KEY``; operations by user or
group go to every node on ``P:native`` (each applies them to its own connections). A
native message is fire and forget, as a local send is: it reaches the nodes that are up.

Failed authentications are counted in Redis too (``P:fail:IP``, expiring with the window);
when an IP's failures across the cluster reach ``auth_fail_limit``, every node is told to
refuse it (``block``), so spreading guesses over nodes gains an attacker nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.cluster.link import Link
from gateway.connection import Connection
from gateway.ratelimit import FailureLimiter
from gateway.registry import Registry
from protocol import cluster as wire
from protocol.ids import MAX_WORKERS, owner_of

log = logging.getLogger("uvgate.cluster")


class NativeRelay:
    def __init__(self, link: Link, registry: Registry[Connection], limiter: FailureLimiter) -> None:
        self.link = link
        self.registry = registry
        self.limiter = limiter
        self.node = ""  # set once the node's key is claimed
        self.all_channel = f"{link.prefix}:native".encode()
        self.forwarded = 0
        self.applied = 0
        self.dropped = 0

    @property
    def node_channel(self) -> bytes:
        return f"{self.link.prefix}:node:{self.node}".encode()

    def channels(self) -> list[bytes]:
        return [self.node_channel, self.all_channel]

    def attach(self, node: str) -> None:
        self.node = node
        self.registry.relay = self
        self.limiter.shared = self._failed

    # ---------------------------------------------------------------- sending
    def owner(self, conn_id: str) -> str | None:
        try:
            node, worker = owner_of(conn_id)
        except ValueError:
            return None
        key = str(node * MAX_WORKERS + worker)
        return None if key == self.node else key

    def forward(
        self,
        op: str,
        target: Any,
        message: Any = None,
        *,
        code: int = 1000,
        reason: str = "",
        exclude: str | None = None,
        node: str | None = None,
    ) -> None:
        native = wire.Native(op, target, message, code, reason, exclude, self.node)
        try:
            data = wire.encode_native(native)
        except (TypeError, ValueError) as exc:
            log.warning("a %s to other nodes is not serialisable: %s", op, exc)
            return
        channel = f"{self.link.prefix}:node:{node}".encode() if node else self.all_channel
        self._publish(channel, data)

    def _publish(self, channel: bytes, data: bytes) -> None:
        if not self.link.up:
            self.dropped += 1
            return
        self.forwarded += 1

        def lost() -> None:
            self.dropped += 1

        self.link.spawn(self._send(channel, data), fallback=lost)

    async def _send(self, channel: bytes, data: bytes) -> None:
        from gateway.cluster.link import Unavailable

        try:
            await self.link.redis.publish(channel, data)
        except Exception as exc:
            self.link.failed(exc)
            raise Unavailable(str(exc)) from exc

    # -------------------------------------------------------------- receiving
    def handle(self, channel: bytes, data: bytes) -> None:
        try:
            message = wire.decode(data)
        except wire.ClusterMessageError:
            return
        if type(message) is not wire.Native or message.origin == self.node:
            return  # ours, already applied here
        if message.op == "block":
            if isinstance(message.target, str):
                self.limiter.block(message.target, float(message.code))
            return
        self.applied += 1
        self.registry.apply_relayed(
            message.op,
            message.target,
            message.message,
            message.code,
            message.reason,
            message.exclude,
        )

    # ------------------------------------------------------- failure limiting
    def _failed(self, ip: str) -> None:
        limiter = self.limiter
        if limiter.limit <= 0 or not self.link.up:
            return
        self.link.spawn(self._count(ip), fallback=lambda: None)

    async def _count(self, ip: str) -> None:
        from gateway.cluster.link import Unavailable

        key = f"{self.link.prefix}:fail:{ip}"
        window_ms = int(self.limiter.window * 1000)
        try:
            async with self.link.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, window_ms, nx=True)
                pipe.pttl(key)
                count, _, ttl = await pipe.execute()
        except Exception as exc:
            self.link.failed(exc)
            raise Unavailable(str(exc)) from exc
        if int(count) == self.limiter.limit:
            seconds = max(1, int(ttl) // 1000)
            self.limiter.block(ip, seconds)
            self.forward("block", ip, code=seconds)
