"""Nodes of a Pusher cluster without sockets, for the engine contract suite.

A ``TestNode`` is what the gateway's Pusher shell is, minus the sockets: a ``PusherHub``
over string handles and an engine, with itself as the engine's node side (``Local``):
every payload a handle receives, reply or delivery, lands in its ``inbox`` in order. A
cluster of them is built on the memory engine (a shared ``MemoryBus``) or on the Redis
engine (real ``redis-server``, one ``ClusterNode`` each), and the same cases run on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.cluster import build as build_cluster
from gateway.cluster.node import ClusterNode
from gateway.config import Config
from gateway.tasks import TaskGroup
from protocol.pusher import messages
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App
from protocol.pusher.authorize import SignedInUser, SubscriptionGrant
from protocol.pusher.channels import classify
from protocol.pusher.engine import Engine, MemoryBus, MemoryEngine
from protocol.pusher.hub import Delivery, PusherHub, Session, Step, trigger_delivery
from protocol.pusher.presence import PresenceMember
from protocol.pusher.state import Joined

_ids = itertools.count(1)


async def answer(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or hasattr(value, "__await__") else value


async def settle(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class TestNode:
    __test__ = False  # not a pytest class

    def __init__(self, engine: Engine, index: int) -> None:
        self.engine = engine
        self.index = index
        self.hub: PusherHub[str] = PusherHub()
        self.inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.hooks: list[tuple[str, wh.WebhookEvent]] = []
        self.kicked: list[str] = []
        self.sessions: dict[str, Session[str]] = {}
        self._handles: dict[str, str] = {}  # socket id -> handle
        engine.bind(self)

    # ------------------------------------------------------------------ Local
    def deliver(self, delivery: Delivery) -> int:
        targets = set(self.hub.targets(delivery) or ())
        if delivery.exclude is not None:
            targets.discard(self._handles.get(delivery.exclude, ""))
        payload = json.loads(delivery.payload)
        for handle in targets:
            self.inbox[handle].append(payload)
        return len(targets)

    def send_to(self, socket_id: str, payload: bytes) -> bool:
        handle = self._handles.get(socket_id)
        if handle is None:
            return False
        self.inbox[handle].append(json.loads(payload))
        return True

    def emit(self, app: App, event: wh.WebhookEvent) -> None:
        self.hooks.append((app.id, event))

    def terminate(self, app_id: str, user_id: str) -> int:
        handles = self.hub.user_handles(app_id, user_id)
        self.kicked.extend(handles)
        return len(handles)

    # ------------------------------------------------------------- the driver
    async def open(self, name: str, app: App) -> int:
        socket_id = f"{(self.index + 1) * 100}.{next(_ids)}"
        count = int(await answer(self.engine.connect(app, socket_id)))
        self.sessions[name] = self.hub.open(app, name, socket_id, 0.0)
        self._handles[socket_id] = name
        return count

    def socket(self, name: str) -> str:
        return self.sessions[name].socket_id

    async def subscribe(
        self, name: str, channel: str, user: str | None = None, info: Any = None, now: float = 0.0
    ) -> None:
        session = self.sessions[name]
        member = PresenceMember(user, info) if user is not None else None
        grant = SubscriptionGrant(channel, classify(channel), member)
        step, replies = self.hub.subscribing(session, grant)
        if step is Step.DONE:
            self.inbox[name].extend(json.loads(r) for r in replies)
            return
        if step is Step.ROSTER:
            members = await answer(self.engine.members(session.app, channel))
            self.inbox[name].append(json.loads(messages.subscription_succeeded(channel, members)))
            return

        def joined(result: Joined) -> None:
            effects = self.hub.subscribed(session, grant, result)
            for reply in effects.replies:
                self.inbox[name].append(json.loads(reply))
            for event in effects.webhooks:
                self.engine.webhook(session.app, event)

        await answer(self.engine.join(session.app, channel, session.socket_id, member, now, joined))

    async def unsubscribe(self, name: str, channel: str) -> None:
        session = self.sessions[name]
        leave = self.hub.unsubscribe(session, channel)
        if leave is not None:
            await answer(self.engine.leave(session.app, leave[0], session.socket_id, leave[1]))

    async def signin(self, name: str, user: str, watchlist: tuple[str, ...] = ()) -> None:
        session = self.sessions[name]
        signed = SignedInUser(user, None, watchlist, json.dumps({"id": user}))
        previous = self.hub.signing_in(session, signed)
        if previous is not None:
            await answer(
                self.engine.sign_out(
                    session.app, previous.id, session.socket_id, previous.watchlist
                )
            )
        online = await answer(
            self.engine.sign_in(session.app, user, session.socket_id, list(watchlist))
        )
        for reply in self.hub.signed_in(session, signed, online).replies:
            self.inbox[name].append(json.loads(reply))

    async def close(self, name: str) -> None:
        session = self.sessions.pop(name)
        closing = self.hub.closing(session)
        app, socket_id = session.app, session.socket_id
        for channel, user_id in closing.leaves:
            await answer(self.engine.leave(app, channel, socket_id, user_id))
        if closing.user is not None:
            user = closing.user
            await answer(self.engine.sign_out(app, user.id, socket_id, user.watchlist))
        await answer(self.engine.disconnect(app, socket_id))

    async def trigger(
        self, app: App, channel: str, event: str, data: str, exclude: str | None = None
    ) -> None:
        delivery = trigger_delivery(app, channel, event, data, exclude)
        await answer(self.engine.trigger(app, delivery, event, data, 0.0))

    async def whisper(self, name: str, channel: str, event: str, data: str) -> None:
        session = self.sessions[name]
        delivery, _ = self.hub.client_event(
            session, messages.ClientEvent(event, channel, data), 0.0
        )
        await answer(self.engine.publish(delivery))

    def events(self, name: str) -> list[str]:
        return [m["event"] for m in self.inbox[name]]


@contextlib.asynccontextmanager
async def memory_cluster(size: int) -> AsyncIterator[list[TestNode]]:
    bus = MemoryBus()
    yield [TestNode(MemoryEngine(bus), i) for i in range(size)]


@contextlib.asynccontextmanager
async def redis_cluster(url: str, size: int, prefix: str) -> AsyncIterator[list[TestNode]]:
    tasks = TaskGroup()
    members: list[ClusterNode] = []
    nodes: list[TestNode] = []
    config = Config(redis_url=url, redis_prefix=prefix)
    try:
        for i in range(size):
            member = build_cluster(config, tasks, 0)
            await member.claim(i + 1, 0)
            nodes.append(TestNode(member.engine, i))
            await member.start()
            members.append(member)
        await settle(lambda: all(m.ready for m in members))
        yield nodes
    finally:
        for member in members:
            await member.stop()
        await tasks.cancel_all()


CLUSTERS = ("memory", "redis")
