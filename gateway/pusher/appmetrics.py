"""The Pusher series per app (label ``app_id``, as soketi's), read at scrape time.

Connections are the hub's count of this node's open connections per app (the engine's
count is the cluster's); messages and client events are the handler's per-app counters;
the HTTP API reports its own (``PusherApi.metrics``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from gateway.metrics import Metric

__all__ = ["app_metrics"]


def _per_app(
    name: str, kind: Literal["counter", "gauge"], help: str, values: Mapping[str, int]
) -> Metric:
    metric = Metric(name, kind, help)
    for app_id, value in sorted(values.items()):
        metric.samples.append(({"app_id": app_id}, value))
    return metric


def app_metrics(service: Any) -> list[Metric]:
    """``service``: the gateway's ``PusherService``."""
    store = service.store
    # Every configured app has a series, 0 when nobody is connected.
    connected: Counter[str] = Counter(
        {app.id: 0 for app in store} if isinstance(store, Iterable) else {}
    )
    connected.update(service.hub.connections())
    handler = service.handler
    return [
        _per_app(
            "uvgate_pusher_connections",
            "gauge",
            "Pusher sockets connected to this node, per app (soketi_connected)",
            connected,
        ),
        _per_app(
            "uvgate_pusher_messages_received_total",
            "counter",
            "Messages received from Pusher sockets, per app",
            handler.received,
        ),
        _per_app(
            "uvgate_pusher_client_events_total",
            "counter",
            "Client events (client-*) accepted and relayed, per app",
            handler.client_events,
        ),
    ]
