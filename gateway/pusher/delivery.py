"""This node's side of the engine: deliveries, one-off sends, kicks and webhook events.

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
from protocol.pusher import messages
from protocol.pusher import webhooks as wh
from protocol.pusher.apps import App
from protocol.pusher.engine import Engine
from protocol.pusher.errors import UNAUTHORIZED
from protocol.pusher.hub import Delivery, Effects, PusherHub

TERMINATED = "You got disconnected by the app."


class WebhookSink(Protocol):
    """Receives webhook events as they happen (the webhook dispatcher).

    ``emit`` is synchronous, cheap and never raises; it is called only for apps with
    webhooks configured.
    """

    def emit(self, app: App, event: wh.WebhookEvent) -> None: ...


class LocalDelivery:
    """The node side of the engine (``protocol.pusher.engine.Local``)."""

    def __init__(
        self, hub: PusherHub[Connection], registry: Registry[Connection], engine: Engine
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.engine = engine
        self.webhooks: WebhookSink | None = None
        engine.bind(self)

    def deliver(self, delivery: Delivery) -> int:
        """Write ``delivery`` to its local targets; returns how many took it."""
        targets = self.hub.targets(delivery)
        if not targets:
            return 0
        exclude = self.registry.get(delivery.exclude) if delivery.exclude else None
        return write_all(targets, encode_frame(OP_TEXT, delivery.payload), exclude)

    def send_to(self, socket_id: str, payload: bytes) -> bool:
        conn = self.registry.get(socket_id)
        return conn is not None and conn.write_frame(encode_frame(OP_TEXT, payload))

    def terminate(self, app_id: str, user_id: str) -> int:
        """Close the user's signed-in connections of this node with 4009 (after a
        ``pusher:error``): 4000-4099 tells pusher-js not to reconnect, the point of a kick
        (a reconnecting pusher-js would sign the user straight back in)."""
        targets = self.hub.user_handles(app_id, user_id)
        if not targets:
            return 0
        error = encode_frame(OP_TEXT, messages.error(TERMINATED, UNAUTHORIZED).encode())
        for conn in targets:
            conn.write_frame(error)
            conn.close(UNAUTHORIZED, TERMINATED)
        return len(targets)

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
