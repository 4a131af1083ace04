"""Run configuration shared by the CLI, the generator processes and the compare driver."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Sane maxima: every run is bounded in count and in time.
MAX_CONNECTIONS = 1_000_000
MAX_DURATION_S = 600.0
MAX_TIMEOUT_S = 1800.0
MAX_PROCS = 64
MAX_MESSAGE_SIZE = 1 << 20
MAX_DEPTH = 1024
# Per generator process: stay well below the 20,000-fd hard cap of this machine.
FDS_PER_PROC = 18_000
# ip_local_port_range 32768-60999 gives ~28k ports per source IP, but connect() gets slower
# as a range fills up (it probes for a free port): keep each source under ~10k sockets.
PORTS_PER_SOURCE = 10_000


@dataclass
class RunConfig:
    scenario: str = "connect"
    protocol: str = "native"  # native | pusher
    host: str = "127.0.0.1"
    port: int = 6001  # uvgate's default port
    path: str = "/ws"
    http_host: str = ""  # Pusher HTTP API; defaults to host/port
    http_port: int = 0
    secret: str = "bench-secret"
    app_id: str = "12345"
    app_key: str = "app-key"
    app_secret: str = "app-secret"
    group: str = "bench"  # native chat group / Pusher channel suffix
    connections: int = 1000  # connect/hold: how many; echo: ignored
    concurrency: int = 50  # connect: parallel dials; echo: connections
    rate: float = 1000.0  # hold: new connections per second (0 = as fast as possible)
    hold_s: float = 10.0
    duration: float = 5.0  # echo/fanout measured window
    size: int = 32
    depth: int = 1
    binary: bool = False
    subscribers: int = 100
    publish_rate: float = 0.0  # fanout: publishes/s, 0 = closed loop with `window`
    window: int = 4
    procs: int = 1
    sources: list[str] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    timeout: float = 120.0
    connect_timeout: float = 10.0
    server_pids: list[int] = field(default_factory=list)
    server_children: bool = False
    allow_remote: bool = False
    label: str = ""
    # auto: the native generator (bench/native) when it can be built and covers the run,
    # else the Python one; native: that one or an error; python: always the Python one.
    generator: str = "auto"
    native_binary: str = ""  # set by runner.plan when the native generator is used
    server_cpus: list[int] = field(default_factory=list)  # pin the --server-pid processes
    # More ports of the same host (the other nodes of a cluster): connections are spread
    # round robin over ``port`` and these; the publisher stays on ``port`` (or http_port).
    spread: list[int] = field(default_factory=list)
    # The native generator polls without sleeping (wsgen --busy-poll): a server's write to
    # a generator asleep in epoll_wait pays for waking its CPU (on a VM an interprocessor
    # interrupt, charged to the server as system time), and a slower server finds it asleep
    # more often. Only with ``cpus`` of its own (it keeps them busy); the time its polls
    # found nothing is reported and not counted as the generator's load.
    busy_poll: bool = False

    @property
    def channel(self) -> str:
        return f"private-{self.group}"

    @property
    def ws_path(self) -> str:
        if self.protocol == "pusher":
            from .pusher import ws_path

            return ws_path(self.app_key)
        return self.path

    @property
    def api_host(self) -> str:
        return self.http_host or self.host

    @property
    def api_port(self) -> int:
        return self.http_port or self.port

    def set_url(self, url: str) -> None:
        u = urlsplit(url)
        if u.scheme not in ("ws", "http"):
            raise ValueError(f"only ws:// URLs are supported (got {url!r})")
        if not u.hostname:
            raise ValueError(f"no host in {url!r}")
        self.host = u.hostname
        self.port = u.port or 80
        if u.path:
            self.path = u.path + (f"?{u.query}" if u.query else "")

    def validate(self) -> None:
        if self.scenario not in ("connect", "hold", "echo", "fanout"):
            raise ValueError(f"unknown scenario {self.scenario!r}")
        if self.protocol not in ("native", "pusher"):
            raise ValueError("protocol must be native or pusher")
        if self.generator not in ("auto", "native", "python"):
            raise ValueError("generator must be auto, native or python")
        if self.protocol == "pusher" and self.scenario == "echo":
            raise ValueError("echo is native only (Pusher has no echo)")
        checks = [
            (1 <= self.connections <= MAX_CONNECTIONS, f"connections must be 1..{MAX_CONNECTIONS}"),
            (1 <= self.concurrency <= MAX_CONNECTIONS, "concurrency out of range"),
            (0 < self.duration <= MAX_DURATION_S, f"duration must be in (0, {MAX_DURATION_S}]"),
            (0 <= self.hold_s <= MAX_DURATION_S, f"hold must be in [0, {MAX_DURATION_S}]"),
            (0 < self.timeout <= MAX_TIMEOUT_S, f"timeout must be in (0, {MAX_TIMEOUT_S}]"),
            (1 <= self.procs <= MAX_PROCS, f"procs must be 1..{MAX_PROCS}"),
            (0 <= self.size <= MAX_MESSAGE_SIZE, "size out of range"),
            (1 <= self.depth <= MAX_DEPTH, f"depth must be 1..{MAX_DEPTH}"),
            (1 <= self.subscribers <= MAX_CONNECTIONS, "subscribers out of range"),
            (1 <= self.window <= 10_000, "window out of range"),
            (self.rate >= 0 and self.publish_rate >= 0, "rates must be >= 0"),
            (all(0 < p < 65536 for p in self.spread), "spread ports must be 1..65535"),
            (
                not self.busy_poll or bool(self.cpus),
                "--busy-poll needs --cpus: a generator that never sleeps must have CPUs of its own",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def total_sockets(self) -> int:
        if self.scenario == "hold":
            return self.connections
        if self.scenario == "echo":
            return self.concurrency
        if self.scenario == "fanout":
            return self.subscribers + self.window + 1
        return self.concurrency

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(**d)


def share(total: int, index: int, parts: int) -> int:
    """Worker ``index``'s share of ``total`` split over ``parts`` workers."""
    return total // parts + (1 if index < total % parts else 0)
