"""What each generator process does per scenario (runs inside a worker, on uvloop).

Every scenario follows the same control script with the parent (see runner.py):
``ready`` (connections set up) -> parent sends ``go`` -> measured work -> ``done``.
``hold`` adds ``ramped`` after the ramp and waits for ``stop``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from . import pusher
from .config import RunConfig, share
from .conn import BenchConn, Spec, classify, dial
from .stats import Samples
from .wsclient import OP_BINARY, OP_TEXT

_TS = re.compile(rb'"data"\s*:\s*"(\d+)')
_DIAL_PARALLEL = 256  # connection attempts in flight per worker while setting up


class Ctl:
    """The worker's side of the control pipe (implemented in runner.py)."""

    async def wait(self, kind: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def send(self, kind: str, data: Any = None) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Base:
    """Counters and connection bookkeeping shared by the scenarios."""

    def __init__(self, cfg: RunConfig, worker: int) -> None:
        self.cfg = cfg
        self.worker = worker
        self.spec = Spec(cfg, worker)
        self.loop = asyncio.get_running_loop()
        self.fails: Counter[str] = Counter()
        self.ok = 0
        self.alive = 0
        self.peak = 0
        self.lost = 0
        self.messages = 0
        self.deliveries = 0
        self.lat: dict[str, Samples] = {}
        self.conns: list[BenchConn] = []
        self._src_i = 0
        self._waiters: dict[int, asyncio.Future[str | None]] = {}
        # Work to do once the result is reported (outside the measured window).
        self.after_done: Callable[[], None] | None = None

    async def run(self, ctl: Ctl) -> dict[str, Any]:
        raise NotImplementedError

    def samples(self, name: str) -> Samples:
        s = self.lat.get(name)
        if s is None:
            s = self.lat[name] = Samples()
        return s

    def source(self) -> str | None:
        srcs = self.cfg.sources
        if not srcs:
            return None
        self._src_i += 1
        return srcs[self._src_i % len(srcs)]

    # -- Owner callbacks --------------------------------------------------
    def on_ready(self, conn: BenchConn) -> None:
        self.ok += 1
        self.alive += 1
        if self.alive > self.peak:
            self.peak = self.alive
        self.samples("handshake_ms").add((conn.t_open - conn.t_start) * 1e3)
        self.samples("auth_ms").add((conn.t_ready - conn.t_auth) * 1e3)
        w = self._waiters.pop(id(conn), None)
        if w is not None and not w.done():
            w.set_result(None)

    def on_fail(self, conn: BenchConn, kind: str) -> None:
        self.fails[kind] += 1
        w = self._waiters.pop(id(conn), None)
        if w is not None and not w.done():
            w.set_result(kind)

    def on_app_message(self, conn: BenchConn, opcode: int, payload: bytes) -> None:
        pass

    def on_lost(self, conn: BenchConn) -> None:
        self.alive -= 1
        self.lost += 1
        w = conn.state if isinstance(conn.state, asyncio.Future) else None
        if w is not None and not w.done():
            w.set_result(None)

    # -- helpers ----------------------------------------------------------
    async def open(self, index: int, join: bool = False) -> BenchConn | None:
        """Dial, handshake and authenticate one connection; ``None`` on failure (counted)."""
        conn = BenchConn(self.spec, self, index, join)
        fut: asyncio.Future[str | None] = self.loop.create_future()
        self._waiters[id(conn)] = fut
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            # One timer per connection (cheaper than wait_for's extra task): it cancels a
            # dial still in progress, or fails a connection stuck in handshake/auth.
            nonlocal expired
            if conn.transport is None:
                expired = True
                task.cancel()
            else:
                conn.timeout()

        timer = self.loop.call_later(self.cfg.connect_timeout, expire)
        try:
            try:
                spread = self.cfg.spread
                port = None
                if spread:
                    ports = (self.cfg.port, *spread)
                    port = ports[index % len(ports)]
                await dial(self.loop, self.spec, conn, self.source(), port)
            except OSError as exc:
                self._waiters.pop(id(conn), None)
                self.fails[classify(exc)] += 1
                return None
            except asyncio.CancelledError:
                if not expired:
                    raise
                task.uncancel()
                self._waiters.pop(id(conn), None)
                self.fails["connect_timeout"] += 1
                return None
            kind = await fut
        finally:
            timer.cancel()
        return conn if kind is None else None

    async def open_many(self, count: int, join: bool = False, first_index: int = 0) -> None:
        """Open ``count`` connections, ``_DIAL_PARALLEL`` at a time, into ``self.conns``."""
        next_i = 0

        async def slot() -> None:
            nonlocal next_i
            while next_i < count:
                i = next_i
                next_i += 1
                c = await self.open(first_index + i, join)
                if c is not None:
                    self.conns.append(c)

        await asyncio.gather(*(slot() for _ in range(min(_DIAL_PARALLEL, count))))

    def progress(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "alive": self.alive,
            "fail": sum(self.fails.values()),
            "msgs": self.messages,
            "deliv": self.deliveries,
        }

    def result(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "alive": self.alive,
            "peak": self.peak,
            "lost": self.lost,
            "failures": dict(self.fails),
            "messages": self.messages,
            "deliveries": self.deliveries,
            "latency": {
                k: {"values": s.to_list(), "max": s.max, "count": s.count}
                for k, s in self.lat.items()
            },
        }

    def close_all(self) -> None:
        for c in self.conns:
            if not c.closed and c.transport is not None:
                c.transport.close()


# -- connect --------------------------------------------------------------------------------
class Connect(Base):
    async def run(self, ctl: Ctl) -> dict[str, Any]:
        procs = self.cfg.procs
        n = share(self.cfg.connections, self.worker, procs)
        c = max(1, share(self.cfg.concurrency, self.worker, procs))
        ctl.send("ready")
        await ctl.wait("go")
        next_i = 0

        async def slot() -> None:
            nonlocal next_i
            while next_i < n:
                i = next_i
                next_i += 1
                conn = await self.open(i)
                if conn is None:
                    continue
                done: asyncio.Future[None] = self.loop.create_future()
                conn.state = done
                conn.send_close()
                try:
                    # RFC 6455 7.1.1: the server closes TCP first; give it a moment.
                    await asyncio.wait_for(done, 2.0)
                except TimeoutError:
                    self.fails["close_timeout"] += 1
                    conn.abort()
                self.samples("total_ms").add((time.perf_counter() - conn.t_start) * 1e3)

        await asyncio.gather(*(slot() for _ in range(min(c, n))))
        return self.result()

    def on_lost(self, conn: BenchConn) -> None:
        super().on_lost(conn)
        self.lost -= 1  # closing is the plan here, not a loss


# -- hold -----------------------------------------------------------------------------------
class Hold(Base):
    async def run(self, ctl: Ctl) -> dict[str, Any]:
        procs = self.cfg.procs
        n = share(self.cfg.connections, self.worker, procs)
        rate = self.cfg.rate / procs if self.cfg.rate > 0 else 0.0
        ctl.send("ready")
        await ctl.wait("go")
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(max(1, self.cfg.concurrency))
        pending: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            async with sem:
                c = await self.open(i)
            if c is not None:
                self.conns.append(c)

        for i in range(n):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            task = self.loop.create_task(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
        while pending:
            await asyncio.gather(*list(pending))
        ramp_s = time.perf_counter() - t0
        ctl.send("ramped", {"ramp_s": ramp_s, "alive": self.alive})
        await ctl.wait("stop")
        res = self.result()
        res["held"] = self.alive
        res["ramp_s"] = ramp_s
        self.close_all()
        return res


# -- echo -----------------------------------------------------------------------------------
class Echo(Base):
    def __init__(self, cfg: RunConfig, worker: int) -> None:
        super().__init__(cfg, worker)
        self.running = False
        self.outstanding = 0
        self.rtt = self.samples("rtt_ms")
        self.payload = (b"x" * cfg.size) if cfg.size else b""
        self.opcode = OP_BINARY if cfg.binary else OP_TEXT

    async def run(self, ctl: Ctl) -> dict[str, Any]:
        c = share(self.cfg.concurrency, self.worker, self.cfg.procs)
        await self.open_many(c)
        ctl.send("ready")
        await ctl.wait("go")
        self.messages = 0
        self.running = True
        depth = self.cfg.depth
        now = time.perf_counter()
        for conn in self.conns:
            # Fixed mask + fixed payload: the frame is built once per connection.
            frame = conn.masker.frame(self.opcode, self.payload)
            conn.state = (frame, deque([now] * depth))
            conn.transport.write(frame * depth)
            self.outstanding += depth
        await asyncio.sleep(self.cfg.duration)
        self.running = False
        counted = self.messages
        end = time.monotonic() + 2.0
        while self.outstanding > 0 and time.monotonic() < end and self.alive:
            await asyncio.sleep(0.01)
        res = self.result()
        res["messages"] = counted
        res["window_s"] = self.cfg.duration
        self.close_all()
        return res

    def on_app_message(self, conn: BenchConn, opcode: int, payload: bytes) -> None:
        t = time.perf_counter()
        frame, sent = conn.state
        self.rtt.add((t - sent.popleft()) * 1e3)
        self.outstanding -= 1
        if self.running:
            self.messages += 1
            conn.transport.write(frame)
            sent.append(t)
            self.outstanding += 1


# -- fanout ---------------------------------------------------------------------------------
class Fanout(Base):
    """Subscribers in every worker; worker 0 also runs the publisher."""

    def __init__(self, cfg: RunConfig, worker: int) -> None:
        super().__init__(cfg, worker)
        self.lat_d = self.samples("delivery_ms")
        self.first_ns = 0
        self.last_ns = 0
        self.published = 0
        self.pub_conn: BenchConn | None = None
        self.pub_inflight = 0
        self.running = False
        self.closed_loop = cfg.publish_rate <= 0
        self._pub_end = 0.0
        self._pub_done: asyncio.Future[None] | None = None

    async def run(self, ctl: Ctl) -> dict[str, Any]:
        cfg = self.cfg
        n = share(cfg.subscribers, self.worker, cfg.procs)
        pusher_mode = cfg.protocol == "pusher"
        await self.open_many(n, join=not pusher_mode)
        http: list[pusher.HTTPClient] = []
        if self.worker == 0:
            if pusher_mode:
                for _ in range(cfg.window if self.closed_loop else 4):
                    _, proto = await self.loop.create_connection(
                        lambda: pusher.HTTPClient(cfg.api_host, cfg.api_port),
                        cfg.api_host,
                        cfg.api_port,
                    )
                    http.append(proto)
            else:
                self.pub_conn = await self.open(10**6, join=self.closed_loop)
                if self.pub_conn is None:
                    raise RuntimeError("publisher could not connect and authenticate")
                self.pub_conn.state = "publisher"
        ctl.send("ready")
        go = await ctl.wait("go")
        # No reset of the counters here: another worker may already be publishing.
        self.running = True
        if self.worker == 0:
            if pusher_mode:
                await self._publish_http(http)
            else:
                await self._publish_ws()
        else:
            await asyncio.sleep(cfg.duration)
        self.running = False
        # Drain: the last publishes may still be on their way.
        quiet_until = time.monotonic() + 0.5
        hard_end = time.monotonic() + 5.0
        seen = self.deliveries
        while time.monotonic() < hard_end:
            await asyncio.sleep(0.05)
            if self.deliveries != seen:
                seen = self.deliveries
                quiet_until = time.monotonic() + 0.5
            elif time.monotonic() > quiet_until:
                break
        res = self.result()
        res.update(
            published=self.published,
            first_ns=self.first_ns,
            last_ns=self.last_ns,
            go_ns=go["t0_ns"] if isinstance(go, dict) else 0,
        )

        def close() -> None:
            for h in http:
                h.transport.close()
            self.close_all()
            if self.pub_conn is not None and self.pub_conn.transport is not None:
                self.pub_conn.transport.close()

        self.after_done = close  # after the result is reported (bench/runner.py)
        return res

    def _publish_frame(self) -> bytes:
        g = self.cfg.group
        body = f'{{"type":"publish","group":"{g}","data":"{time.monotonic_ns()}"}}'.encode()
        assert self.pub_conn is not None
        return self.pub_conn.masker.frame(OP_TEXT, body)

    async def _publish_ws(self) -> None:
        cfg = self.cfg
        pub = self.pub_conn
        assert pub is not None
        end = time.monotonic() + cfg.duration
        if self.closed_loop:
            self._pub_done = self.loop.create_future()
            for _ in range(cfg.window):
                pub.transport.write(self._publish_frame())
                self.published += 1
                self.pub_inflight += 1
            self._pub_end = end
            try:
                await asyncio.wait_for(self._pub_done, cfg.duration + 5)
            except TimeoutError:
                pass
            return
        interval = 1.0 / cfg.publish_rate
        t = time.monotonic()
        while t < end:
            pub.transport.write(self._publish_frame())
            self.published += 1
            t += interval
            delay = t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _publish_http(self, http: list[pusher.HTTPClient]) -> None:
        cfg = self.cfg
        end = time.monotonic() + cfg.duration
        path = f"/apps/{cfg.app_id}/events"

        async def one(h: pusher.HTTPClient) -> None:
            body = pusher.trigger_body(cfg.channel, "bench", str(time.monotonic_ns()))
            target = pusher.signed_request("POST", path, body, cfg.app_key, cfg.app_secret)
            status, _text = await h.request("POST", target, body)
            if status != 200:
                self.fails[f"trigger_http_{status}"] += 1
            else:
                self.published += 1

        if self.closed_loop:

            async def loop_one(h: pusher.HTTPClient) -> None:
                while time.monotonic() < end and not h.lost:
                    await one(h)

            await asyncio.gather(*(loop_one(h) for h in http))
            return
        interval = 1.0 / cfg.publish_rate
        t = time.monotonic()
        i = 0
        pending: set[asyncio.Task[None]] = set()
        while t < end:
            task = self.loop.create_task(one(http[i % len(http)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            t += interval
            delay = t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if pending:
            await asyncio.wait(pending, timeout=5)

    def on_app_message(self, conn: BenchConn, opcode: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        if conn.state == "publisher":
            # Closed loop: our own copy came back, so the broadcast went out; publish the next.
            self.pub_inflight -= 1
            if self.running and time.monotonic() < self._pub_end:
                conn.transport.write(self._publish_frame())
                self.published += 1
                self.pub_inflight += 1
            elif (
                self.pub_inflight <= 0 and self._pub_done is not None and not self._pub_done.done()
            ):
                self._pub_done.set_result(None)
            return
        m = _TS.search(payload)
        if m is None:
            return
        self.lat_d.add((now - int(m.group(1))) / 1e6)
        self.deliveries += 1
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now


SCENARIOS: dict[str, type[Base]] = {
    "connect": Connect,
    "hold": Hold,
    "echo": Echo,
    "fanout": Fanout,
}
