"""Scale-out through Redis: worker processes and machines as nodes of one cluster.

* ``link``     the command side (redis-py): the state script, health
* ``pubsub``   the node's own PUB/SUB connection (subscriptions, probes, reconnects)
* ``engine``   ``RedisEngine``: Pusher's deployment-wide facts and delivery
* ``outbox``   webhook events decided once in Redis, delivered by one node
* ``node``     the node's claim, heartbeat, the reaper of dead nodes, readiness
* ``scripts.lua``  every change of the shared state, atomically

``build`` makes the node of a gateway from its config; the gateway (the composition
root) claims it before listening and runs it as a component.
"""

from __future__ import annotations

from gateway.cluster.engine import RedisEngine
from gateway.cluster.link import Link, Unavailable, address_of
from gateway.cluster.node import ClusterNode, NodeConflict
from gateway.cluster.pubsub import Subscriber
from gateway.cluster.relay import NativeRelay
from gateway.config import Config
from gateway.connection import Connection
from gateway.ratelimit import FailureLimiter
from gateway.registry import Registry
from gateway.tasks import TaskGroup

__all__ = ["ClusterNode", "NodeConflict", "RedisEngine", "Unavailable", "build"]


def build(
    config: Config,
    tasks: TaskGroup,
    worker: int,
    registry: Registry[Connection] | None = None,
    limiter: FailureLimiter | None = None,
) -> ClusterNode:
    assert config.redis_url is not None
    link = Link(config.redis_url, config.redis_prefix, tasks)
    holder: dict[str, ClusterNode] = {}
    relay = NativeRelay(
        link,
        registry if registry is not None else Registry(),
        limiter
        if limiter is not None
        else FailureLimiter(config.auth_fail_limit, config.auth_fail_window),
    )

    def on_message(channel: bytes, data: bytes) -> None:
        if channel == relay.node_channel or channel == relay.all_channel:
            relay.handle(channel, data)
        else:
            holder["node"].engine.on_message(channel, data)

    def on_state(up: bool) -> None:
        holder["node"].on_state(up)

    subscriber = Subscriber(address_of(config.redis_url), on_message, on_state)
    engine = RedisEngine(link, subscriber, "")
    node = holder["node"] = ClusterNode(link, subscriber, engine, relay, worker=worker)
    return node
