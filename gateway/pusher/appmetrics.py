"""The Pusher series per app (label ``app_id``, as soketi's), read at scrape time.

Connections are counted by the hub when asked; messages and client events are the
handler's per-app counters; the HTTP API reports its own (``PusherApi.metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.metrics import Metric

__all__ = ["app_metrics"]


def _per_app(name: str, kind: Any, help: str, values: Mapping[str, int]) -> Metric:
    metric = Metric(name, kind, help)
    for app_id, value in sorted(values.items()):
        metric.samples.append(({"app_id": app_id}, value))
    return metric


def app_metrics(service: Any) -> list[Metric]:
    """``service``: the gateway's ``PusherService`` (its store, hub and handler)."""
    store = service.store
    apps = list(store) if isinstance(store, Iterable) else []  # a dynamic store: not listed
    connected = {app.id: service.hub.connection_count(app) for app in apps}
    handler = service.handler
    return [
        _per_app(
            "uvgate_pusher_connections",
            "gauge",
            "Pusher sockets connected, per app (soketi_connected)",
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
