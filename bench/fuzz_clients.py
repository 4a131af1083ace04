"""The two kinds of client of ``uvgate-bench fuzz`` (bench/fuzz.py).

* Good clients (``GoodClient`` on bench's hand-rolled ``WSClient``): authenticate with a
  valid token (native first message), echo numbered messages and check every reply;
  ``good_loop`` reconnects every few seconds so authentication keeps being exercised.
* Mutated connections (``run_plan``): send one ``fuzz_cases.Plan`` and classify what came
  back: an HTTP ``status``, a ``close`` frame, a normal ``replied`` answer, ``dropped``
  (EOF or reset without either) or ``timeout`` (nothing by the plan's deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conn import classify
from .fuzz_cases import Plan, Target, auth_frame, upgrade_head
from .wsclient import OP_TEXT, Masker, WSClient

__all__ = [
    "CATEGORIES",
    "ECHO_TIMEOUT_S",
    "GoodSpec",
    "GoodStats",
    "connect",
    "good_loop",
    "probe",
    "probe_upgrade",
    "run_plan",
]

ECHO_TIMEOUT_S = 5.0
CATEGORIES = ("status", "close", "replied", "dropped", "timeout", "connect_failed")


@dataclass(frozen=True, slots=True)
class GoodSpec:
    target: Target
    interval: float = 0.05  # seconds between an echo and the next message
    reconnect_every: float = 5.0  # mean session length
    source: str | None = None  # local address to bind
    seed: int = 0


class GoodStats:
    def __init__(self) -> None:
        self.sessions = 0
        self.auths = 0
        self.echoes = 0
        self.failures: Counter[str] = Counter()


class GoodClient(WSClient):
    """Authenticates with a valid token, then echoes numbered messages and checks each."""

    def __init__(self, spec: GoodSpec, stats: GoodStats, user: str) -> None:
        t = spec.target
        super().__init__(t.host, t.port, t.path)
        self.spec = spec
        self.stats = stats
        self.user = user
        self.phase = "handshake"
        self.expected = b""
        self.sent_at = time.monotonic()  # the handshake's deadline counts from here
        self.seq = 0
        self.leaving = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_open(self) -> None:
        self.phase = "auth"
        self.sent_at = time.monotonic()
        self.transport.write(auth_frame(self.spec.target, self.masker, self.user))

    def on_message(self, opcode: int, payload: bytes) -> None:
        if self.phase == "auth":
            try:
                ok = json.loads(payload).get("type") == "auth_ok"
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                self.fail("auth_refused")
                return
            self.stats.auths += 1
            self.phase = "echo"
            self._send_next()
        elif self.phase == "echo":
            if payload != self.expected:
                self.fail("echo_mismatch")
                return
            self.stats.echoes += 1
            self.expected = b""
            loop = asyncio.get_running_loop()
            loop.call_later(self.spec.interval, self._send_next)

    def _send_next(self) -> None:
        if self.closed or self.leaving:
            return
        self.seq += 1
        self.expected = json.dumps({"n": self.seq, "user": self.user, "pad": "é" * 8}).encode()
        self.sent_at = time.monotonic()
        self.send(OP_TEXT, self.expected)

    def check_deadline(self) -> None:
        waiting = self.phase in ("handshake", "auth") or (self.phase == "echo" and self.expected)
        if waiting and not self.closed and time.monotonic() - self.sent_at > ECHO_TIMEOUT_S:
            self.fail(f"{self.phase}_timeout")

    def leave(self) -> None:
        self.leaving = True
        self.send_close(1000)

    def on_close_frame(self, code: int, reason: bytes) -> None:
        if not self.leaving:
            self._failed(f"closed_{code}")

    def on_failure(self, kind: str) -> None:
        self._failed(kind)

    def _failed(self, kind: str) -> None:
        if not self.done.done():
            self.stats.failures[kind] += 1
            self.done.set_result(None)

    def on_closed(self, exc: Exception | None) -> None:
        if not self.leaving:
            self._failed("connection_lost")
        elif not self.done.done():
            self.done.set_result(None)


async def connect(t: Target, factory: Any, source: str | None) -> Any:
    """Open TCP to ``t`` (from ``source`` when given) with ``factory``'s protocol."""
    loop = asyncio.get_running_loop()
    local = (source, 0) if source else None
    _, proto = await asyncio.wait_for(
        loop.create_connection(factory, t.host, t.port, local_addr=local), 5.0
    )
    return proto


async def good_session(
    spec: GoodSpec, stats: GoodStats, user: str, until: float, *, echoes: int = 0
) -> None:
    """One connection: authenticate, echo until ``until`` (or ``echoes`` echoes, if
    given) or a failure, then close."""
    stats.sessions += 1
    client = GoodClient(spec, stats, user)
    try:
        await connect(spec.target, lambda: client, spec.source)
    except (OSError, TimeoutError) as exc:
        stats.failures[classify(exc)] += 1
        return
    while not client.done.done() and time.monotonic() < until:
        if echoes and stats.echoes >= echoes:
            break
        await asyncio.sleep(0.05 if echoes else 0.2)
        client.check_deadline()
    if not client.done.done():
        client.leave()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(client.done), 3.0)
    client.abort()


async def good_loop(spec: GoodSpec, stats: GoodStats, index: int, stop: asyncio.Event) -> None:
    """One good client slot: session after session (each a new authentication)."""
    rng = random.Random(spec.seed * 1000 + index)
    while not stop.is_set():
        life = spec.reconnect_every * rng.uniform(0.5, 1.5)
        await good_session(spec, stats, f"good-{index}", time.monotonic() + life)


async def probe(spec: GoodSpec) -> str:
    """A fresh good client: 'ok' if it authenticates and gets an echo back (within the
    echo timeout: a loaded server is slow, not dead)."""
    stats = GoodStats()
    await good_session(spec, stats, "probe", time.monotonic() + ECHO_TIMEOUT_S + 1, echoes=1)
    if stats.failures:
        return ",".join(sorted(stats.failures))
    return "ok" if stats.echoes else "no_echo"


async def probe_upgrade(target: Target) -> str:
    """For a server without native auth (``--good-clients 0``): 'ok' if an upgrade
    request gets its 101."""
    plan = Plan("probe", [(0.0, upgrade_head(target))], wait=5.0)
    category, detail = await run_plan(target, plan, None)
    return "ok" if detail == "status 101" else f"{category}: {detail}"


# -- mutated connections ----------------------------------------------------------------------


def _frames(data: bytes) -> tuple[int | None, int]:
    """(first close code, count of other frames) in unmasked server bytes."""
    pos, others = 0, 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n, hlen = b1 & 0x7F, 2
        if n == 126:
            if len(data) - pos < 4:
                break
            n, hlen = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif n == 127:
            if len(data) - pos < 10:
                break
            n, hlen = struct.unpack_from("!Q", data, pos + 2)[0], 10
        payload = data[pos + hlen : pos + hlen + n]
        if b0 & 0x0F == 0x8:
            return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), others
        others += 1
        pos += hlen + n
    return None, others


def _responses(data: bytes) -> tuple[list[int], int]:
    """Statuses of the HTTP responses at the start of ``data`` and where they end."""
    statuses: list[int] = []
    pos = 0
    while data.startswith(b"HTTP/", pos):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end].split(b"\r\n")
        try:
            status = int(head[0].split(b" ")[1])
        except (IndexError, ValueError):
            break
        statuses.append(status)
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        pos = end + 4 + (0 if status == 101 else length)
        if status == 101:
            break
    return statuses, pos


class _Collector(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = asyncio.get_running_loop().create_future()
        self.reset = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if len(self.data) < 1 << 20:  # bounded: a flood of answers is not kept
            self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.reset = exc is not None
        if not self.eof.done():
            self.eof.set_result(None)

    async def until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        while not predicate() and not self.eof.done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(0.02, left))
        return predicate()


async def run_plan(t: Target, plan: Plan, source: str | None) -> tuple[str, str]:
    """Send one plan on a new connection; return (category, detail), the category one of
    ``CATEGORIES``."""
    col = _Collector()
    try:
        await connect(t, lambda: col, source)
    except (OSError, TimeoutError) as exc:
        return "connect_failed", classify(exc)
    tr = col.transport
    try:
        after = 0
        if plan.upgrade:
            extra = f"Sec-WebSocket-Extensions: {plan.offer}\r\n" if plan.offer else ""
            tr.write(upgrade_head(t, extra=extra))
            await col.until(lambda: b"\r\n\r\n" in col.data, time.monotonic() + 5.0)
            statuses, after = _responses(bytes(col.data))
            if statuses[:1] != [101]:
                return _classify_http(plan, col, statuses)
            if plan.auth:
                masker = Masker()
                tr.write(auth_frame(t, masker, "fuzz"))
                got = await col.until(
                    lambda: (
                        _frames(bytes(col.data[after:]))[1] > 0
                        or _frames(bytes(col.data[after:]))[0] is not None
                    ),
                    time.monotonic() + 5.0,
                )
                code, _ = _frames(bytes(col.data[after:]))
                if code is not None or not got:
                    return ("close", f"auth refused: close {code}") if code else ("timeout", "auth")
                after = len(col.data)
        for pause, piece in plan.pieces:
            if pause:
                await asyncio.sleep(pause)
            if col.eof.done() or tr.is_closing():
                break
            tr.write(piece)
        await col.until(lambda: _answered(plan, col, after), time.monotonic() + plan.wait)
        if plan.half_close and not col.eof.done() and not tr.is_closing():
            tr.write_eof()  # then see whether the server lets go of the connection
            await col.until(lambda: False, time.monotonic() + plan.wait)
        if plan.upgrade:
            return _classify_frames(col, after)
        statuses, _ = _responses(bytes(col.data))
        return _classify_http(plan, col, statuses)
    finally:
        tr.abort()


def _answered(plan: Plan, col: _Collector, after: int) -> bool:
    """The server has said all it is going to say for this plan: stop waiting early."""
    if plan.half_close:
        return False
    data = bytes(col.data)
    if plan.upgrade:
        return _frames(data[after:])[0] is not None
    if plan.requests:
        statuses, _ = _responses(data)
        return len(statuses) >= plan.requests or bool(statuses and statuses[-1] >= 400)
    return b"\r\n\r\n" in data


def _classify_http(plan: Plan, col: _Collector, statuses: list[int]) -> tuple[str, str]:
    if plan.requests:
        answered = len(statuses)
        status = statuses[0] if statuses else 0
        if answered >= plan.requests:
            return "status", f"status {status}: all {plan.requests} answered"
        if statuses and statuses[-1] >= 400:
            return "status", f"{answered}/{plan.requests} answered, last status {statuses[-1]}"
        if col.eof.done():
            return "dropped", f"dropped after {answered}/{plan.requests} answers"
        return "timeout", f"{answered}/{plan.requests} answered by the deadline"
    if statuses:
        if statuses[0] == 101:
            return "status", "status 101"
        return "status", f"status {statuses[0]}"
    if col.data:
        return "dropped", "no HTTP response, other bytes"
    if col.eof.done():
        return "dropped", "reset" if col.reset else "closed without an answer"
    return "timeout", "no answer"


def _classify_frames(col: _Collector, after: int) -> tuple[str, str]:
    code, others = _frames(bytes(col.data[after:]))
    if code is not None:
        return "close", f"close {code}"
    if others:
        return "replied", "replied, no close"
    if col.eof.done():
        return "dropped", "reset" if col.reset else "closed without a close frame"
    return "timeout", "no answer"
