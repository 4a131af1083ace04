"""Gateways as nodes of one cluster in the test process, on a real redis-server.

Each gateway is its own node (``node_id`` 1, 2...), serving ``APP`` under a key prefix
of its own, so tests sharing the session's redis-server never see each other.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from gateway import Config, Gateway
from protocol.pusher.apps import App
from tests.gwtest import SECRET
from tests.pusher_api_helpers import request
from tests.pusher_ws_helpers import app_table

APP = App(id="1", key="key-1", secret="secret-1", client_events=True)
_prefixes = itertools.count(1)


@contextlib.asynccontextmanager
async def nodes(
    redis_url: str, count: int = 2, *, prefix: str | None = None, **options: Any
) -> AsyncIterator[list[Gateway]]:
    prefix = prefix or f"g{next(_prefixes)}"
    gateways: list[Gateway] = []
    try:
        for node_id in range(1, count + 1):
            config = {
                "host": "127.0.0.1",
                "port": 0,
                "secret": SECRET,
                "node_id": node_id,
                "apps": [app_table(APP)],
                "redis_url": redis_url,
                "redis_prefix": prefix,
                **options,
            }
            gw = Gateway(Config(**config))
            await gw.start()
            gateways.append(gw)
        yield gateways
    finally:
        for gw in gateways:
            await gw.shutdown(grace=0.5)


async def ready(gw: Any) -> int:
    return (await request(gw.port, "GET", "/ready")).status
