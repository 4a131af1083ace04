"""Delivering on this node: what the engine publishes reaches the local connections here.

Every delivery is framed once and written to each local target through the one fan-out
(``gateway.fanout``); a ``socket_id`` to exclude is found in the registry, where every
Pusher socket is indexed by id. The engine calls ``deliver`` for every delivery meant for
this node: at once for a single node, when its copy comes back from Redis in a cluster.
"""

from __future__ import annotations

from typing import Protocol

from gateway.connection import Connection
from gateway.fanout import write_all
from gateway.registry import Registry
from protocol.frames import OP_TEXT, encode_frame
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App
from protocol.pusher.engine import Engine
from protocol.pusher.hub import Delivery, Effects, PusherHub


class WebhookSink(Protocol):
    """Receives webhook events as they happen (the webhook dispatcher).

    ``emit`` is synchronous, cheap and never raises; it is called only for apps with
    webhooks configured.
    """

    def emit(self, app: App, event: wh.WebhookEvent) -> None: ...


class LocalDelivery:
    def __init__(
        self, hub: PusherHub[Connection], registry: Registry[Connection], engine: Engine
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.engine = engine
        self.webhooks: WebhookSink | None = None
        engine.bind(self.deliver, self.emit)

    def deliver(self, delivery: Delivery) -> int:
        """Write ``delivery`` to its local targets; returns how many took it."""
        targets = self.hub.targets(delivery)
        if not targets:
            return 0
        exclude = self.registry.get(delivery.exclude) if delivery.exclude else None
        return write_all(targets, encode_frame(OP_TEXT, delivery.payload), exclude)

    def emit(self, app: App, event: wh.WebhookEvent) -> None:
        sink = self.webhooks
        if sink is not None:
            sink.emit(app, event)

    def perform(self, effects: Effects, app: App, actor: Connection) -> None:
        """The actor's replies, in order, then the webhook events (through the engine)."""
        for reply in effects.replies:
            if type(reply) is str:
                actor.send_text(reply)
            else:
                actor.write_frame(encode_frame(OP_TEXT, reply))  # type: ignore[arg-type]
        for event in effects.webhooks:
            self.engine.webhook(app, event)
