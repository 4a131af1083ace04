"""Counters of one gateway worker: plain integers on the hot path, read at scrape time."""

from __future__ import annotations

from gateway.metrics import Metric

_HELP = {
    "tcp_accepted": "TCP connections accepted",
    "tcp_closed": "TCP connections closed",
    "ws_opened": "WebSocket handshakes completed",
    "ws_closed": "WebSocket connections closed after opening",
    "handshake_rejected": "Upgrade requests refused with an HTTP status",
    "handshake_timeouts": "Connections dropped for an incomplete HTTP request (slowloris)",
    "auth_ok": "Successful authentications",
    "auth_failed": "Refused authentications (error frame + close)",
    "auth_timeouts": "Connections closed for not authenticating in time",
    "rate_limited": "Upgrades refused with 429 for too many failures from the IP",
    "over_capacity": "Upgrades refused with 503 at max_connections",
    "protocol_errors": "Connections failed for RFC 6455 violations or limits",
    "slow_consumers": "Connections closed for unread data over max_send_buffer",
    "proxy_refused": "Connections closed for a missing or bad PROXY protocol header",
}


class Stats:
    __slots__ = tuple(_HELP)

    tcp_accepted: int
    tcp_closed: int
    ws_opened: int
    ws_closed: int
    handshake_rejected: int
    handshake_timeouts: int
    auth_ok: int
    auth_failed: int
    auth_timeouts: int
    rate_limited: int
    over_capacity: int
    protocol_errors: int
    slow_consumers: int
    proxy_refused: int

    def __init__(self) -> None:
        for name in _HELP:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _HELP}

    def metrics(self) -> list[Metric]:
        return [
            Metric.single(f"uvgate_{name}_total", "counter", _HELP[name], value)
            for name, value in self.as_dict().items()
        ]
