"""One generator connection: dial, handshake, authenticate (native or Pusher), then app traffic."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import time
from typing import Any, Protocol

from . import pusher
from .config import RunConfig
from .tokens import issue_token
from .wsclient import OP_TEXT, WSClient

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class Owner(Protocol):
    """What a scenario implements to hear from its connections (all synchronous)."""

    def on_ready(self, conn: BenchConn) -> None: ...
    def on_fail(self, conn: BenchConn, kind: str) -> None: ...
    def on_app_message(self, conn: BenchConn, opcode: int, payload: bytes) -> None: ...
    def on_lost(self, conn: BenchConn) -> None: ...


class Spec:
    """Per-run constants every connection shares (kept out of the connection objects)."""

    def __init__(self, cfg: RunConfig, worker: int) -> None:
        self.cfg = cfg
        self.host = cfg.host
        self.port = cfg.port
        self.path = cfg.ws_path
        self.pusher = cfg.protocol == "pusher"
        self.worker = worker
        # One token per worker and user is plenty: the server verifies each one anyway.
        self._tokens: dict[str, bytes] = {}

    def auth_frame(self, user: str) -> bytes:
        tok = self._tokens.get(user)
        if tok is None:
            token = issue_token(self.cfg.secret, user, ttl=3600)
            tok = json.dumps({"type": "auth", "token": token}, separators=(",", ":")).encode()
            self._tokens[user] = tok
        return tok


class BenchConn(WSClient):
    """Phases: handshake -> auth (-> join) -> ready. Times in perf_counter seconds."""

    def __init__(self, spec: Spec, owner: Owner, index: int, join: bool = False) -> None:
        super().__init__(spec.host, spec.port, spec.path)
        self.spec = spec
        self.owner = owner
        self.index = index
        self.join = join
        self.phase = "handshake"
        self.t_start = time.perf_counter()
        self.t_open = 0.0
        self.t_auth = 0.0
        self.t_ready = 0.0
        self.failed: str | None = None
        self.socket_id = ""
        self.user = f"u{spec.worker}-{index % 1000}"
        self.state: Any = None  # scenario-owned per-connection state

    def on_open(self) -> None:
        self.t_open = time.perf_counter()
        if self.spec.pusher:
            self.phase = "established"
        else:
            self.phase = "auth"
            self.t_auth = self.t_open
            self.send(OP_TEXT, self.spec.auth_frame(self.user))

    def on_message(self, opcode: int, payload: bytes) -> None:
        if self.phase == "ready":
            if self.spec.pusher and b'"pusher:ping"' in payload:
                # Pusher servers drop a connection that leaves a ping unanswered (long holds).
                self.send(OP_TEXT, b'{"event":"pusher:pong","data":{}}')
                return
            self.owner.on_app_message(self, opcode, payload)
            return
        try:
            if self.spec.pusher:
                self._pusher_setup(payload)
            else:
                self._native_setup(payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            self.fail("bad_reply")

    def _native_setup(self, payload: bytes) -> None:
        msg = json.loads(payload)
        kind = msg.get("type")
        if self.phase == "auth":
            if kind == "auth_ok":
                if self.join:
                    self.phase = "join"
                    g = self.spec.cfg.group
                    self.send(OP_TEXT, b'{"type":"join","group":' + json.dumps(g).encode() + b"}")
                else:
                    self._ready()
            elif kind == "error":
                self.fail(f"auth_rejected_{msg.get('code', '')}")
            else:
                self.fail("bad_reply")
        elif self.phase == "join":
            if kind == "joined":
                self._ready()
            elif kind == "error":
                self.fail("join_rejected")
            # anything else (e.g. a message already broadcast) is ignored until joined

    def _pusher_setup(self, payload: bytes) -> None:
        event, data = pusher.parse_event(payload)
        if event == "pusher:connection_established" and self.phase == "established":
            self.socket_id = str(data["socket_id"])
            cfg = self.spec.cfg
            self.phase = "auth"
            self.t_auth = time.perf_counter()
            self.send(
                OP_TEXT,
                pusher.subscribe_message(cfg.app_key, cfg.app_secret, self.socket_id, cfg.channel),
            )
        elif event == "pusher_internal:subscription_succeeded" and self.phase == "auth":
            self._ready()
        elif event in ("pusher:error", "pusher:subscription_error"):
            code = data.get("code", data.get("status", "")) if isinstance(data, dict) else ""
            self.fail(f"auth_rejected_{code}")
        elif event == "pusher:ping":
            self.send(OP_TEXT, b'{"event":"pusher:pong","data":{}}')

    def _ready(self) -> None:
        self.phase = "ready"
        self.t_ready = time.perf_counter()
        self.owner.on_ready(self)

    def on_close_frame(self, code: int, reason: bytes) -> None:
        if self.phase != "ready" and self.failed is None:
            self._report(f"closed_{code}")

    def on_failure(self, kind: str) -> None:
        self._report(kind)

    def _report(self, kind: str) -> None:
        if self.failed is None and self.phase != "ready":
            self.failed = kind
            self.owner.on_fail(self, kind)

    def on_closed(self, exc: Exception | None) -> None:
        if self.phase == "ready":
            self.owner.on_lost(self)
        elif self.failed is None:
            self._report("closed_before_ready" if exc is None else "reset_before_ready")

    def timeout(self) -> None:
        if self.phase != "ready" and self.failed is None:
            self._report(f"{self.phase}_timeout")
            self.abort()


def classify(exc: BaseException) -> str:
    """A short failure kind for a dial exception."""
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "connect_timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno == errno.EADDRNOTAVAIL:
            return "no_ephemeral_port"
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return "fd_limit"
        return f"connect_{errno.errorcode.get(exc.errno, exc.errno)}"
    return f"connect_{type(exc).__name__}"


async def dial(
    loop: asyncio.AbstractEventLoop,
    spec: Spec,
    conn: BenchConn,
    source: str | None,
    port: int | None = None,
) -> None:
    """Open TCP (bound to ``source`` when given; to ``port`` instead of the spec's, for
    another node) and attach ``conn``; raises OSError."""
    port = port or spec.port
    if source is None:
        await loop.create_connection(lambda: conn, spec.host, port)
        return
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET:
            # Let connect() pick the port per 4-tuple: ~28k ports per (source, target).
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        await loop.sock_connect(sock, (spec.host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.create_connection(lambda: conn, sock=sock)
    except BaseException:
        sock.close()
        raise
