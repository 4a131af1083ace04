"""Performing what the Pusher hub decided, on this node: deliveries, replies, webhooks.

Every delivery is framed once and written to each local target through the one fan-out
(``gateway.fanout``); a ``socket_id`` to exclude is found in the registry, where every
Pusher socket is indexed by id. A cluster replaces ``deliver`` with a publish through its
broker, whose copies come back to ``deliver`` on every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gateway.connection import Connection
from gateway.fanout import write_all
from gateway.registry import Registry
from protocol.frames import OP_TEXT, encode_frame
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App
from protocol.pusher.hub import Delivery, Effects, PusherHub


class WebhookSink(Protocol):
    """Receives webhook events as they happen (the webhook dispatcher).

    ``emit`` is synchronous, cheap and never raises; it is called only for apps with
    webhooks configured.
    """

    def emit(self, app: App, event: wh.WebhookEvent) -> None: ...


class LocalDelivery:
    def __init__(self, hub: PusherHub[Connection], registry: Registry[Connection]) -> None:
        self.hub = hub
        self.registry = registry
        self.webhooks: WebhookSink | None = None

    def deliver(self, delivery: Delivery) -> int:
        """Write ``delivery`` to its local targets; returns how many took it."""
        targets = self.hub.targets(delivery)
        if not targets:
            return 0
        exclude = self.registry.get(delivery.exclude) if delivery.exclude else None
        return write_all(targets, encode_frame(OP_TEXT, delivery.payload), exclude)

    def perform(self, effects: Effects, app: App, actor: Connection | None = None) -> None:
        """Deliveries to the others first, then the actor's replies, then webhooks."""
        for delivery in effects.deliveries:
            self.deliver(delivery)
        if actor is not None:
            for reply in effects.replies:
                if type(reply) is str:
                    actor.send_text(reply)
                else:
                    actor.write_frame(encode_frame(OP_TEXT, reply))  # type: ignore[arg-type]
        if effects.webhooks:
            self.emit(app, effects.webhooks)

    def emit(self, app: App, events: Iterable[wh.WebhookEvent]) -> None:
        sink = self.webhooks
        if sink is not None:
            for event in events:
                sink.emit(app, event)
