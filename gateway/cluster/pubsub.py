"""The node's one PUB/SUB connection, owned here: subscriptions, confirmations, probes.

redis-py's PUB/SUB has a history of losing subscriptions silently across reconnects
(redis-py #2089, #1572, #2417) and Centrifugo saw a PUB/SUB connection stuck after a
failover while health checks stayed green (#1189). So this module speaks RESP itself
(``hiredis`` parses) over one asyncio connection and owns its whole life:

* ``wanted`` is the set of channels this node needs; after every (re)connect all of them
  are subscribed again, in batches, and the connection is reported up only once every
  confirmation came back;
* ``subscribe`` returns once Redis confirmed the subscription: a node must not answer
  ``subscription_succeeded`` before it can receive the channel's events;
* a PING goes out every ``probe_interval``; no PONG for ``probe_timeout`` means the
  connection is stuck, and it is dropped and made again;
* messages are handed to ``on_message(channel, data)`` synchronously, in the order Redis
  sent them (the order of the channel for every node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import hiredis

log = logging.getLogger("uvgate.cluster")

BATCH = 500  # channels per SUBSCRIBE command when resubscribing


def pack(*args: bytes | str | int) -> bytes:
    """A RESP command."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Subscriber:
    def __init__(
        self,
        address: dict[str, Any],
        on_message: Callable[[bytes, bytes], None],
        on_state: Callable[[bool], None],
        *,
        probe_interval: float = 1.0,
        probe_timeout: float = 3.0,
        connect_timeout: float = 2.0,
        retry_delays: Iterable[float] = (0.1, 0.25, 0.5, 1.0),
    ) -> None:
        self.address = address
        self.on_message = on_message
        self.on_state = on_state
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.connect_timeout = connect_timeout
        self.retry_delays = tuple(retry_delays)
        self.wanted: set[bytes] = set()
        self.up = False
        self.reconnects = 0
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._last_pong = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------- interface
    async def subscribe(self, channel: bytes) -> None:
        """Add ``channel``; returns once Redis confirmed it (raises if the link is down)."""
        self.wanted.add(channel)
        if not self.up or self._writer is None:
            raise ConnectionError("PUB/SUB connection is down")
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, deque()).append(waiter)
        self._writer.write(pack(b"SUBSCRIBE", channel))
        await waiter

    def unsubscribe(self, channel: bytes) -> None:
        self.wanted.discard(channel)
        if self.up and self._writer is not None:
            self._writer.write(pack(b"UNSUBSCRIBE", channel))

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._set_up(False)

    def drop(self) -> None:
        """Close the connection now (tests, and a stuck link): it is made again."""
        if self._writer is not None:
            self._writer.close()

    # ---------------------------------------------------------------- the loop
    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._session()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._stopping:
                    if failures == 0:
                        log.warning("Redis PUB/SUB connection lost: %s", exc)
                    failures += 1
            self._set_up(False)
            self._fail_waiters(ConnectionError("PUB/SUB connection lost"))
            if self._stopping:
                return
            self.reconnects += 1
            delay = self.retry_delays[min(failures, len(self.retry_delays) - 1)]
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(self._open(), self.connect_timeout)
        self._writer = writer
        parser = hiredis.Reader()
        try:
            await self._handshake(reader, writer, parser)
            # Everything we want, again: confirmed before we call ourselves up.
            channels = list(self.wanted)
            expected = len(channels)
            for i in range(0, len(channels), BATCH):
                writer.write(pack(b"SUBSCRIBE", *channels[i : i + BATCH]))
            loop = asyncio.get_running_loop()
            self._last_pong = loop.time()
            prober = asyncio.ensure_future(self._probe(writer))
            try:
                if expected == 0:
                    self._set_up(True)
                while True:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError("closed by Redis")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        if isinstance(reply, hiredis.ReplyError):
                            raise ConnectionError(str(reply))
                        expected = self._handle(reply, expected)
            finally:
                prober.cancel()
        finally:
            writer.close()
            self._writer = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.address
        if address.get("path"):
            return await asyncio.open_unix_connection(address["path"])
        context = None
        if address.get("ssl"):
            context = ssl.create_default_context()
        return await asyncio.open_connection(address["host"], address["port"], ssl=context)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: Any
    ) -> None:
        password = self.address.get("password")
        if not password:
            return
        username = self.address.get("username")
        writer.write(pack(b"AUTH", username, password) if username else pack(b"AUTH", password))
        while (reply := parser.gets()) is False:
            data = await asyncio.wait_for(reader.read(4096), self.connect_timeout)
            if not data:
                raise ConnectionError("closed by Redis during AUTH")
            parser.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise ConnectionError(f"Redis AUTH: {reply}")

    def _handle(self, reply: Any, expected: int) -> int:
        kind = reply[0]
        if kind == b"message":
            try:
                self.on_message(reply[1], reply[2])
            except Exception:
                log.exception("cluster message handler failed")
        elif kind == b"subscribe":
            channel = reply[1]
            waiting = self._waiting.get(channel)
            if waiting:
                waiter = waiting.popleft()
                if not waiting:
                    del self._waiting[channel]
                if not waiter.done():
                    waiter.set_result(None)
            elif expected > 0:
                expected -= 1
                if expected == 0:
                    self._set_up(True)
        elif kind == b"pong":
            self._last_pong = asyncio.get_running_loop().time()
        return expected

    async def _probe(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.probe_interval)
            if loop.time() - self._last_pong > self.probe_timeout:
                log.warning("Redis PUB/SUB connection stuck (no PONG): reconnecting")
                writer.close()
                return
            writer.write(pack(b"PING"))

    def _set_up(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self.on_state(up)

    def _fail_waiters(self, exc: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        for queue in waiting.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(exc)
