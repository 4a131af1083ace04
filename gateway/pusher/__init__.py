"""Pusher Channels protocol v7 on the gateway: the I/O shell around ``protocol.pusher``.

* ``handler``   the WebSocket route ``/app/{key}``
* ``api``       the HTTP API ``/apps/{id}/...``
* ``delivery``  performs what the sans-I/O hub (``protocol.pusher.hub``) decided
* ``webhooks``  delivers webhook events over HTTP
* ``service``   the component the gateway starts, stops and scrapes (``gateway.pusher``)

``build`` makes them from the narrow parts the gateway (the composition root) hands it.
The apps come from the config (``[[apps]]`` tables, else one app from
``app_id``/``app_key``/``app_secret``, defaulting to the development credentials).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from gateway.auth import AuthGate
from gateway.config import Config
from gateway.connection import Connection
from gateway.liveness import Heartbeat
from gateway.pusher.api import PusherApi
from gateway.pusher.delivery import LocalDelivery, WebhookSink
from gateway.pusher.handler import PusherHandler
from gateway.pusher.service import PusherService
from gateway.pusher.webhooks import WebhookDispatcher, any_webhooks
from gateway.registry import Registry
from gateway.stats import Stats
from gateway.tasks import TaskGroup
from protocol.pusher.apps import DEV_APP, StaticAppStore, app_from_mapping
from protocol.pusher.engine import Engine, MemoryEngine
from protocol.pusher.hub import PusherHub

log = logging.getLogger("uvgate.pusher")

__all__ = [
    "PusherApi",
    "PusherHandler",
    "PusherService",
    "WebhookSink",
    "build",
    "build_store",
]


def build_store(config: Config) -> StaticAppStore:
    """The apps of ``config``: ``[[apps]]``, else one app from the ``app_*`` options."""
    if config.apps:
        apps = [app_from_mapping(data) for data in config.apps]
    else:
        apps = [
            dataclasses.replace(
                DEV_APP,
                id=config.app_id or DEV_APP.id,
                key=config.app_key or DEV_APP.key,
                secret=config.app_secret or DEV_APP.secret,
                name="default",
            )
        ]
    return StaticAppStore(apps)


def _warn_dev_credentials(store: StaticAppStore) -> None:
    for app in store:
        if app.secret == DEV_APP.secret:
            log.warning(
                "PUSHER APP %r USES THE DEVELOPMENT SECRET %r: anyone can sign channel and "
                "API requests. Set UVGATE_APP_ID, UVGATE_APP_KEY and UVGATE_APP_SECRET "
                "(or [[apps]] in the config file) before exposing this server.",
                app.id,
                DEV_APP.secret,
                extra={"fields": {"app": app.id, "key": app.key}},
            )


def build(
    config: Config,
    *,
    registry: Registry[Connection],
    gate: AuthGate,
    stats: Stats,
    tasks: TaskGroup,
    heartbeat: Heartbeat,
    engine: Engine | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PusherService:
    """The Pusher service for ``config`` (its routes and listener are wired by the caller).

    ``engine``: the deployment-wide state (a cluster's); by default this node's memory.
    """
    store = build_store(config)
    _warn_dev_credentials(store)
    hub: PusherHub[Connection] = PusherHub()
    memory = MemoryEngine() if engine is None else None
    engine = memory if memory is not None else engine
    assert engine is not None
    delivery = LocalDelivery(hub, registry, engine)
    handler = PusherHandler(
        hub,
        engine,
        delivery,
        gate,
        store,
        stats=stats,
        tasks=tasks,
        heartbeat=heartbeat,
        auth_timeout=config.auth_timeout,
        clock=clock,
    )
    dispatcher = None
    if any_webhooks(store):
        dispatcher = WebhookDispatcher(store)
        delivery.webhooks = dispatcher
    service = PusherService(
        store,
        hub,
        engine,
        delivery,
        handler,
        dispatcher=dispatcher,
        timestamp_window=config.api_timestamp_window,
        clock=clock,
    )
    return service
