"""What a connection may see of the server: the narrow context a ``Connection`` is built with.

A connection reads limits, stamps times, registers itself, counts, spawns the odd task
and asks whether the server still accepts. It gets exactly those things here, not the
Gateway, so it can be built alone in a test (``ConnectionContext.standalone()``) and two
listeners (the main port and the Pusher API port) can share one context with different
routers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import Config
from gateway.ratelimit import FailureLimiter
from gateway.registry import Registry
from gateway.stats import Stats
from gateway.tasks import TaskGroup
from gateway.timers import Timers
from protocol.ids import IdFactory


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-connection limits, a frozen snapshot of the config (read on the hot path)."""

    max_message_size: int = 65536
    max_send_buffer: int = 1048576
    max_http_body: int = 262144
    max_connections: int = 100000
    handshake_timeout: float = 10.0
    auth_timeout: float = 10.0
    close_timeout: float = 1.0
    allowed_origins: frozenset[str] | None = None
    deflate: bool = False
    # Pipelined HTTP requests answered per read before the rest waits for the next turn
    # of the loop (a client cannot keep one connection's callback running for ever).
    max_pipelined: int = 32
    # Ask the transport to call ``pause_writing`` well before the hard bound.
    write_high_water: int = 262144

    @staticmethod
    def high_water_for(max_send_buffer: int) -> int:
        return max(16384, min(max_send_buffer // 4, 262144))

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            max_message_size=config.max_message_size,
            max_send_buffer=config.max_send_buffer,
            max_http_body=config.max_http_body,
            max_connections=config.max_connections,
            handshake_timeout=config.handshake_timeout,
            auth_timeout=config.auth_timeout,
            close_timeout=config.close_timeout,
            allowed_origins=frozenset(config.allowed_origins) if config.allowed_origins else None,
            deflate=config.deflate,
            write_high_water=cls.high_water_for(config.max_send_buffer),
        )


class ServerState:
    """Whether the server takes new work: False from the start of a graceful shutdown."""

    __slots__ = ("accepting",)

    def __init__(self) -> None:
        self.accepting = False


class ConnectionContext:
    """Everything a ``Connection`` uses besides its router."""

    __slots__ = (
        "fanout_batch",
        "ids",
        "limiter",
        "limits",
        "registry",
        "server",
        "stats",
        "tasks",
        "timers",
    )

    def __init__(
        self,
        limits: Limits,
        timers: Timers,
        tasks: TaskGroup,
        registry: Registry[Any],
        stats: Stats,
        limiter: FailureLimiter,
        ids: IdFactory,
        server: ServerState,
    ) -> None:
        self.limits = limits
        self.timers = timers
        self.tasks = tasks
        self.registry = registry
        self.stats = stats
        self.limiter = limiter
        self.ids = ids
        self.server = server
        # The peers whose fan-out writes wait for the end of the current read
        # (gateway.fanout.open_batch), None outside one.
        self.fanout_batch: list[Any] | None = None

    @classmethod
    def standalone(cls, limits: Limits | None = None, *, node_id: int = 0) -> ConnectionContext:
        """A context of fresh parts (tests, micro benchmarks), accepting connections."""
        ctx = cls(
            limits or Limits(),
            Timers(),
            TaskGroup(),
            Registry(),
            Stats(),
            FailureLimiter(),
            IdFactory(node_id),
            ServerState(),
        )
        ctx.server.accepting = True
        return ctx

    def open_and_pending(self) -> int:
        """Connections counted against ``max_connections``."""
        return len(self.registry) + len(self.timers.pending)
