"""Pusher Channels protocol v7 on the gateway: WebSocket route, engine, HTTP API.

``install(gateway)`` is called by ``Gateway.__init__`` when ``config.pusher`` is on. It
builds the apps from the config (``[[apps]]`` tables, else one app from
``app_id``/``app_key``/``app_secret``, defaulting to the development credentials),
creates the ``PusherEngine``, routes ``/app/`` to the ``PusherHandler``, and lets the HTTP
API (``gateway.pusher.api``) register its routes. The engine is ``gateway.pusher`` for
embedders::

    gateway.pusher.publish(app, "orders", "created", '{"id":1}')
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from gateway.pusher.engine import ChannelState, PusherEngine, WebhookSink
from gateway.pusher.handler import PusherHandler
from gateway.pusher.session import AppHub, Session
from protocol.pusher.apps import DEV_APP, StaticAppStore, app_from_mapping

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.server import Gateway

log = logging.getLogger("uvgate.pusher")

__all__ = [
    "AppHub",
    "ChannelState",
    "PusherEngine",
    "PusherHandler",
    "Session",
    "WebhookSink",
    "build_store",
    "install",
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


def install(gateway: Gateway) -> PusherEngine | None:
    """Serve Pusher on ``gateway``: returns the engine (``gateway.pusher``)."""
    store = build_store(gateway.config)
    _warn_dev_credentials(store)
    engine = PusherEngine(gateway, store)
    gateway.route_ws("/app/", PusherHandler(gateway, engine), prefix=True)
    from gateway.pusher.api import register_api  # imports this package: import late

    register_api(gateway, engine)
    return engine
