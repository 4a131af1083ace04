"""The command side of Redis: the state script, a few plain commands, health.

redis-py (``redis.asyncio``, with ``hiredis`` parsing) carries the commands: EVALSHA of
``scripts.lua`` with its SCRIPT LOAD fallback (a restarted Redis has forgotten it), a
connection pool, TLS and AUTH from the URL. Every call fails fast: ``socket_timeout``
bounds it and redis-py's own retries are off, because a gateway must answer "unavailable"
quickly instead of holding a client while Redis is away. Any failure marks the link down
(``Unavailable``); the cluster's health loop marks it up again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from gateway.tasks import TaskGroup
from protocol.pusher import webhooks as wh

log = logging.getLogger("uvgate.cluster")

SCRIPT = (Path(__file__).parent / "scripts.lua").read_text()
OUTBOX_MAXLEN = 100_000
POOL_SIZE = 32  # command connections per node


class Unavailable(Exception):
    """Redis could not be reached (or answered an error): nothing was changed."""


def address_of(url: str) -> dict[str, Any]:
    """host/port/path/ssl/username/password of a ``redis://`` / ``rediss://`` /
    ``unix://`` URL (for the PUB/SUB connection, which is not redis-py's)."""
    kwargs = parse_url(url)
    address: dict[str, Any] = {
        "host": kwargs.get("host", "localhost"),
        "port": int(kwargs.get("port", 6379)),
        "path": kwargs.get("path"),
        "username": kwargs.get("username"),
        "password": kwargs.get("password"),
        "ssl": url.startswith("rediss://"),
    }
    return address


class Link:
    def __init__(self, url: str, prefix: str, tasks: TaskGroup, *, timeout: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self.tasks = tasks
        # A bounded pool that makes a burst wait its turn (a thousand clients subscribing
        # at once) instead of failing: redis-py's default pool raises past 100 connections.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
        )
        self.redis: Redis = Redis(connection_pool=pool, decode_responses=False)
        self._script = self.redis.register_script(SCRIPT)
        self.up = False
        self.failures = 0
        self.on_down: Callable[[], None] = lambda: None

    async def call(self, op: str, *args: Any) -> Any:
        """One operation of ``scripts.lua``."""
        try:
            return await self._script(keys=[], args=[self.prefix, op, *args])
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self.failed(exc)
            raise Unavailable(f"Redis: {exc}") from exc
        except RedisError as exc:
            # An error reply (a bug in a script, or a misbehaving server): say it loudly.
            log.error("Redis refused %s: %s", op, exc)
            raise Unavailable(f"Redis: {exc}") from exc

    async def ping(self) -> bool:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return False
        return True

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.up:
            self.up = False
            log.warning("Redis unreachable: %s", exc)
            self.on_down()

    async def add_webhook(self, app_id: str, event: wh.WebhookEvent) -> None:
        """A webhook event into the outbox, where any node's consumer takes it."""
        try:
            await self.redis.xadd(
                f"{self.prefix}:wh:outbox",
                {"a": app_id, "e": orjson.dumps(event.as_dict())},
                maxlen=OUTBOX_MAXLEN,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            self.failed(exc)
            raise Unavailable(str(exc)) from exc

    def spawn(self, work: Coroutine[Any, Any, Any], *, fallback: Callable[[], None]) -> None:
        """Run ``work`` in the background; if Redis fails it, run ``fallback``."""

        async def run() -> None:
            try:
                await work
            except Unavailable:
                fallback()

        self.tasks.spawn(run())

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
