"""Generator processes and the parent that drives them, samples /proc and assembles results."""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from . import bottleneck
from .config import FDS_PER_PROC, PORTS_PER_SOURCE, RunConfig
from .guard import RemoteTargetError, check_target
from .procstat import ProcGroup, descendants, host_cpu, raise_nofile, self_cpu_seconds
from .scenarios import SCENARIOS, Ctl
from .stats import merge_summaries


class BenchError(RuntimeError):
    """A run could not be carried out (a worker failed, a phase timed out...)."""


# -- worker side ---------------------------------------------------------------------------------
class PipeCtl(Ctl):
    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        self.inbox: dict[str, Any] = {}
        self.waiters: dict[str, asyncio.Future[Any]] = {}
        self.cpu_at_go = self_cpu_seconds()
        self.main: asyncio.Task[Any] | None = None
        loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                kind, data = self.conn.recv()
                if kind == "abort":
                    if self.main is not None:
                        self.main.cancel()
                    continue
                if kind == "go":
                    self.cpu_at_go = self_cpu_seconds()
                self.inbox[kind] = data
                w = self.waiters.pop(kind, None)
                if w is not None and not w.done():
                    w.set_result(data)
        except (EOFError, OSError):
            self.loop.remove_reader(self.conn.fileno())
            if self.main is not None:
                self.main.cancel()  # the parent is gone: stop

    async def wait(self, kind: str) -> Any:
        if kind in self.inbox:
            return self.inbox[kind]
        fut = self.waiters[kind] = self.loop.create_future()
        return await fut

    def send(self, kind: str, data: Any = None) -> None:
        self.conn.send((kind, data))


async def _worker_async(conn: Connection, cfg: RunConfig, index: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    ctl = PipeCtl(conn, loop)
    scen = SCENARIOS[cfg.scenario](cfg, index)

    async def report() -> None:
        while True:
            await asyncio.sleep(0.25)
            ctl.send("p", scen.progress())

    rep = loop.create_task(report())
    ctl.main = loop.create_task(scen.run(ctl))
    try:
        result: dict[str, Any] = await ctl.main
    finally:
        rep.cancel()
    result["cpu_s"] = self_cpu_seconds() - ctl.cpu_at_go
    result["pid"] = os.getpid()
    if scen.after_done is not None:
        # Reported before closing: the parent's measured window ends at "done", and
        # closing a thousand connections is not what a fan-out measures.
        os.set_blocking(conn.fileno(), True)
        conn.send(("done", result))
        scen.after_done()
        await asyncio.sleep(0.2)  # let the closes go out before the loop stops
        return {}
    return result


def worker_main(conn: Connection, cfg_dict: dict[str, Any], index: int) -> None:
    cfg = RunConfig.from_dict(cfg_dict)
    if cfg.cpus:
        try:
            os.sched_setaffinity(0, cfg.cpus)
        except OSError:
            pass
    raise_nofile()
    import uvloop

    try:
        if cfg.native_binary:
            from .native.driver import run_native_worker

            result = run_native_worker(conn, cfg, index, cfg.native_binary)
            result["pid"] = os.getpid()
        else:
            result = uvloop.run(_worker_async(conn, cfg, index))
        # add_reader left the pipe non-blocking: a large result must not hit EAGAIN halfway.
        os.set_blocking(conn.fileno(), True)
        if result:  # (empty: already sent, before the scenario's cleanup)
            conn.send(("done", result))
    except BaseException as exc:  # reported to the parent, which fails the run loudly
        try:
            os.set_blocking(conn.fileno(), True)
            conn.send(("error", f"worker {index}: {type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        conn.close()


# -- parent side ---------------------------------------------------------------------------------
def plan(cfg: RunConfig) -> list[str]:
    """Check the target and size the run (procs, source addresses); returns notes."""
    notes: list[str] = []
    check_target(cfg.host, cfg.allow_remote)
    if cfg.protocol == "pusher":
        check_target(cfg.api_host, cfg.allow_remote)
    for s in cfg.sources:
        check_target(s, cfg.allow_remote)
    cfg.validate()
    notes.extend(choose_generator(cfg))
    if cfg.busy_poll and not cfg.native_binary:
        notes.append("busy-poll ignored: only the native generator polls without sleeping")
    sockets = cfg.total_sockets()
    need = math.ceil(sockets / FDS_PER_PROC)
    if need > cfg.procs:
        notes.append(f"procs raised {cfg.procs} -> {need} to keep each under {FDS_PER_PROC} fds")
        cfg.procs = need
    if sockets > PORTS_PER_SOURCE and not cfg.sources and cfg.host.startswith("127."):
        k = math.ceil(sockets / PORTS_PER_SOURCE) + 1
        cfg.sources = [f"127.0.0.{i + 1}" for i in range(k)]
        notes.append(f"using {k} source addresses {cfg.sources[0]}..{cfg.sources[-1]}")
    if cfg.scenario in ("connect", "echo", "fanout") and cfg.procs > 1:
        if cfg.scenario == "echo" and cfg.concurrency < cfg.procs:
            cfg.procs = cfg.concurrency
    return notes


def choose_generator(cfg: RunConfig) -> list[str]:
    """Set ``cfg.native_binary`` when the native generator runs; notes say why not."""
    cfg.native_binary = ""
    if cfg.generator == "python":
        return []
    why = None
    if cfg.protocol != "native":
        why = "it speaks uvgate's native protocol only, not Pusher"
    elif cfg.spread:
        why = "it connects to one port only (no --spread)"
    else:
        from .native import NativeUnavailable, build_generator

        try:
            cfg.native_binary = build_generator()
        except NativeUnavailable as exc:
            why = str(exc)
    if why is None:
        return []
    if cfg.generator == "native":
        raise ValueError(f"--generator native is not available: {why}")
    return [f"Python generator: the native one is not available ({why})"]


class Parent:
    def __init__(self, cfg: RunConfig, show: bool) -> None:
        self.cfg = cfg
        self.show = show
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.inbox: list[dict[str, Any]] = []
        self.latest: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.t_go = 0.0
        self.server = ProcGroup(cfg.server_pids, cfg.server_children)
        self._last_tick = 0.0
        self._last_draw = 0.0
        self.phase = "setup"

    def start(self) -> None:
        ctx = mp.get_context("fork")
        for i in range(self.cfg.procs):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(
                target=worker_main, args=(child_end, self.cfg.to_dict(), i), daemon=True
            )
            p.start()
            child_end.close()
            self.conns.append(parent_end)
            self.procs.append(p)
            self.inbox.append({})
            self.latest.append({})

    def stop(self) -> None:
        for c in self.conns:
            try:
                c.send(("abort", None))
            except OSError:
                pass
        end = time.monotonic() + 3
        for p in self.procs:
            p.join(max(0.0, end - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join(1)
        for c in self.conns:
            c.close()

    def send_all(self, kind: str, data: Any = None) -> None:
        for c in self.conns:
            c.send((kind, data))

    def pump(self, timeout: float) -> None:
        for c in wait(self.conns, timeout):
            assert isinstance(c, Connection)
            i = self.conns.index(c)
            try:
                kind, data = c.recv()
            except (EOFError, OSError):
                if "done" not in self.inbox[i]:
                    raise BenchError(f"generator process {i} died") from None
                continue
            if kind == "p":
                self.latest[i] = data
            elif kind == "error":
                raise BenchError(str(data))
            else:
                self.inbox[i][kind] = data
                if kind == "done":  # the final counts (a short run may end between reports)
                    self.latest[i] = {
                        "ok": data["ok"],
                        "alive": data["alive"],
                        "fail": sum(data["failures"].values()),
                        "msgs": data["messages"],
                        "deliv": data["deliveries"],
                    }
        now = time.monotonic()
        if self.t_go and now - self._last_tick >= 0.25:
            self._last_tick = now
            point = self.totals()
            point["t"] = round(now - self.t_go, 3)
            if self.server:
                snap = self.server.snapshot()
                point["server_rss"] = snap.rss
                point["server_cpu_s"] = snap.cpu_s
            self.timeline.append(point)
        if self.show and now - self._last_draw >= 0.2:
            self._last_draw = now
            self.draw()

    def totals(self) -> dict[str, Any]:
        keys = ("ok", "alive", "fail", "msgs", "deliv")
        return {k: sum(p.get(k, 0) for p in self.latest) for k in keys}

    def draw(self, final: bool = False) -> None:
        cfg = self.cfg
        t = self.totals()
        el = time.monotonic() - self.t_go if self.t_go else 0.0
        if final:
            goal, done = 1, 1.0
        elif cfg.scenario in ("connect", "hold"):
            goal = cfg.connections
            done = t["ok"] + t["fail"]
        else:
            goal, done = 1, min(1.0, el / cfg.duration) if self.t_go else 0.0
        frac = max(0.0, min(1.0, done / goal)) if goal else 0.0
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        line = (
            f"\r{cfg.scenario:<7} [{bar}] {frac * 100:5.1f}% {self.phase:<7} {el:6.1f}s "
            f"ok={t['ok']} alive={t['alive']} fail={t['fail']} msgs={t['msgs']} deliv={t['deliv']}"
        )
        sys.stdout.write(line[:160].ljust(120))
        if final:
            sys.stdout.write("\n")
        sys.stdout.flush()

    def wait_all(self, kind: str, deadline: float) -> list[Any]:
        while not all(kind in box for box in self.inbox):
            if time.monotonic() > deadline:
                raise BenchError(f"timed out waiting for {kind!r} (overall --timeout)")
            self.pump(0.1)
        return [box[kind] for box in self.inbox]

    def sleep(self, seconds: float, deadline: float) -> None:
        end = min(time.monotonic() + seconds, deadline)
        while time.monotonic() < end:
            self.pump(min(0.1, max(0.0, end - time.monotonic())))


def run(cfg: RunConfig, show_progress: bool | None = None) -> dict[str, Any]:
    """Run one scenario with ``cfg.procs`` generator processes; returns the result dict."""
    notes = plan(cfg)
    show = sys.stdout.isatty() if show_progress is None else show_progress
    parent = Parent(cfg, show)
    started = time.time()
    deadline = time.monotonic() + cfg.timeout
    marks: dict[str, Any] = {}
    if cfg.server_cpus and cfg.server_pids:
        if not bottleneck.pin(cfg.server_pids, cfg.server_cpus, cfg.server_children):
            raise BenchError(f"could not pin the server pids {cfg.server_pids}")
    marks["server_affinity"] = bottleneck.affinity(parent.server.live_pids())
    try:
        parent.start()
        parent.phase = "setup"
        parent.wait_all("ready", deadline)
        marks["a"] = (time.monotonic(), parent.server.snapshot(), self_cpu_seconds())
        marks["host_a"] = host_cpu()
        marks["cpus_a"] = bottleneck.cpu_times()
        marks["procs_a"] = bottleneck.process_ticks()
        marks["ours"] = descendants([os.getpid()]) | set(parent.server.live_pids())
        parent.t_go = time.monotonic()
        parent.phase = "run"
        parent.send_all("go", {"t0_ns": time.monotonic_ns()})
        if cfg.scenario == "hold":
            parent.phase = "ramp"
            ramped = parent.wait_all("ramped", deadline)
            marks["ramped"] = (time.monotonic(), parent.server.snapshot(), ramped)
            parent.phase = "hold"
            parent.sleep(cfg.hold_s, deadline)
            marks["held"] = (time.monotonic(), parent.server.snapshot())
            parent.send_all("stop")
        parent.phase = "finish"
        results = parent.wait_all("done", deadline)
        marks["b"] = (time.monotonic(), parent.server.snapshot(), self_cpu_seconds())
        marks["host_b"] = host_cpu()
        marks["cpus_b"] = bottleneck.cpu_times()
        marks["procs_b"] = bottleneck.process_ticks()
        marks["ours"] |= descendants([os.getpid()]) | set(parent.server.live_pids())
        if show:
            parent.draw(final=True)
    except KeyboardInterrupt:
        raise
    finally:
        parent.stop()
    return assemble(cfg, results, marks, parent.timeline, notes, started)


def assemble(
    cfg: RunConfig,
    results: list[dict[str, Any]],
    marks: dict[str, Any],
    timeline: list[dict[str, Any]],
    notes: list[str],
    started: float,
) -> dict[str, Any]:
    ta, sa, pa = marks["a"]
    tb, sb, pb = marks["b"]
    wall = tb - ta
    failures: dict[str, int] = {}
    for r in results:
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
    lat_names = sorted({k for r in results for k in r["latency"]})
    latency = {
        k: merge_summaries([r["latency"][k] for r in results if k in r["latency"]])
        for k in lat_names
    }
    raw = {
        k: [v for r in results for v in r["latency"].get(k, {}).get("values", ())]
        for k in lat_names
    }
    gen_cpu = sum(r["cpu_s"] for r in results) + (pb - pa)
    # A busy-polling generator's empty polls are CPU it would otherwise sleep through:
    # reported, not counted as its load or its cost per unit.
    spin = sum(r.get("spin_s", 0.0) for r in results)
    gen_work = max(0.0, gen_cpu - spin)
    server_cpu = (sb.cpu_s - sa.cpu_s) if cfg.server_pids else None
    ok = sum(r["ok"] for r in results)
    out: dict[str, Any] = {
        "scenario": cfg.scenario,
        "protocol": cfg.protocol,
        "label": cfg.label,
        "target": f"ws://{cfg.host}:{cfg.port}{cfg.ws_path}",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "config": cfg.to_dict(),
        "notes": notes,
        "wall_s": wall,
        "ok": ok,
        "failures": failures,
        "latency_ms": latency,
        "timeline": timeline,
        "generator": {
            "kind": "native" if cfg.native_binary else "python",
            "procs": cfg.procs,
            "cpu_s": gen_cpu,
            "busy_poll_s": spin,
            "util_cores": gen_work / wall if wall > 0 else 0.0,
            "cores_available": len(cfg.cpus) if cfg.cpus else os.cpu_count() or 1,
        },
        "server": None,
    }
    units = 0
    unit = "connection"
    if cfg.scenario == "connect":
        out["connections_per_s"] = ok / wall if wall > 0 else 0.0
        units = ok
    elif cfg.scenario == "echo":
        msgs = sum(r["messages"] for r in results)
        out["messages"] = msgs
        out["messages_per_s"] = msgs / cfg.duration
        out["connections"] = ok
        units = int(latency.get("rtt_ms", {}).get("count", msgs))
        unit = "message"
    elif cfg.scenario == "fanout":
        deliv = sum(r["deliveries"] for r in results)
        pub = sum(r.get("published", 0) for r in results)
        go_ns = max((r.get("go_ns", 0) for r in results), default=0)
        last_ns = max((r.get("last_ns", 0) for r in results), default=0)
        span = (last_ns - go_ns) / 1e9 if last_ns > go_ns else wall
        out["subscribers"] = ok - (1 if cfg.protocol == "native" else 0)
        out["published"] = pub
        out["deliveries"] = deliv
        out["expected_deliveries"] = pub * cfg.subscribers
        out["deliveries_per_s"] = deliv / span if span > 0 else 0.0
        out["publishes_per_s"] = pub / cfg.duration
        units = deliv
        unit = "delivery"
    elif cfg.scenario == "hold":
        t_r, s_r, _ramped = marks["ramped"]
        _t_h, s_h = marks["held"]
        held = sum(r.get("held", 0) for r in results)
        out["target_connections"] = cfg.connections
        out["held"] = held
        out["peak"] = sum(r.get("peak", 0) for r in results)
        out["ramp_s"] = t_r - ta
        out["ramp_rate"] = ok / (t_r - ta) if t_r > ta else 0.0
        units = ok
        if cfg.server_pids:
            out["server_rss"] = {
                "baseline": sa.rss,
                "after_ramp": s_r.rss,
                "after_hold": s_h.rss,
                "per_connection": (s_h.rss - sa.rss) / held if held else None,
            }
            # CPU of the ramp alone (connection setup), not of the idle hold.
            server_cpu = s_r.cpu_s - sa.cpu_s
            wall_ramp = t_r - ta
            out["server"] = {
                "cpu_s": server_cpu,
                "util_cores": server_cpu / wall_ramp if wall_ramp > 0 else 0.0,
                "hold_cpu_s": s_h.cpu_s - s_r.cpu_s,
                "pids": sb.pids,
            }
    out["unit"] = unit
    out["units"] = units
    if server_cpu is not None:
        srv = out["server"] or {
            "cpu_s": server_cpu,
            "util_cores": server_cpu / wall if wall > 0 else 0.0,
            "pids": sb.pids,
        }
        srv[f"cpu_us_per_{unit}"] = srv["cpu_s"] / units * 1e6 if units else None
        srv["rss_end"] = sb.rss
        out["server"] = srv
    out["generator"][f"cpu_us_per_{unit}"] = gen_work / units * 1e6 if units else None
    (busy_a, _tot_a), (busy_b, _tot_b) = marks["host_a"], marks["host_b"]
    host_busy = (busy_b - busy_a) / wall if wall > 0 else 0.0
    ours = gen_cpu / wall + (server_cpu / wall if server_cpu is not None and wall > 0 else 0.0)
    out["host"] = {
        "busy_cores": host_busy,
        "cores": os.cpu_count() or 1,
        # Only meaningful with --server-pid: else the server's own CPU counts as "others".
        "others_cores": max(0.0, host_busy - ours) if wall > 0 else 0.0,
    }
    out["bottleneck"] = judge(cfg, out, marks, wall)
    if "cpus_a" in marks and -1 in marks["cpus_a"]:
        # Without irq/softirq time: that is the loopback traffic of this run, not others.
        out["host"]["others_cores"] = out["bottleneck"].get("others_cores", 0.0)
    out["warnings"] = bottleneck_warnings(out)
    out["_raw_latency_ms"] = raw
    return out


def judge(
    cfg: RunConfig, out: dict[str, Any], marks: dict[str, Any], wall: float
) -> dict[str, Any]:
    """The bottleneck verdict of one run (bench/bottleneck.py) from both sides' CPU."""
    gen = out["generator"]
    a, b = marks.get("cpus_a", {}), marks.get("cpus_b", {})
    all_cpus = set(range(os.cpu_count() or 1))
    gen_cpus = set(cfg.cpus) if cfg.cpus else all_cpus
    srv = out.get("server")
    srv_cpus: set[int] = marks.get("server_affinity") or all_cpus
    # A side's CPUs tell its load only when the two sides are pinned apart.
    apart = not (gen_cpus & srv_cpus) and srv is not None
    srv_cap = max(1, min(srv["pids"], len(srv_cpus))) if srv is not None else 1
    srv_busy = bottleneck.cpus_busy(a, b, srv_cpus) if apart else None
    gen_busy = bottleneck.cpus_busy(a, b, gen_cpus) if apart else None
    spin = gen.get("busy_poll_s", 0.0)
    if gen_busy and spin and wall > 0:
        # The generator's CPUs were kept busy by its empty polls: that time was free.
        gen_busy = (max(0.0, gen_busy[0] - spin / (wall * len(gen_cpus))), gen_busy[1])
    inputs = bottleneck.Inputs(
        generator_cores=gen["util_cores"],
        generator_cap=max(1, min(gen["procs"], len(gen_cpus))),
        server_cores=srv["util_cores"] if srv is not None else None,
        server_cap=srv_cap,
        server_cpus_busy=srv_busy[0] if srv_busy else None,
        server_cpus_irq=srv_busy[1] if srv_busy else 0.0,
        generator_cpus_busy=gen_busy[0] if gen_busy else None,
        generator_cpus_irq=gen_busy[1] if gen_busy else 0.0,
        others_cores=bottleneck.others_cores(
            marks.get("procs_a", {}), marks.get("procs_b", {}), marks.get("ours", set()), wall
        ),
    )
    return bottleneck.classify(inputs)


def bottleneck_warnings(out: dict[str, Any]) -> list[str]:
    verdict = out["bottleneck"]
    warnings: list[str] = []
    srv = out.get("server")
    if verdict["side"] == "generator-bound":
        warnings.append(
            f"GENERATOR-BOUND: {verdict['reason']}: the rates measure the generator, "
            "compare server CPU per unit instead (or add --procs)"
        )
    host = out.get("host") or {}
    if srv is not None and host.get("others_cores", 0.0) > 0.25:
        warnings.append(
            f"HOST-BUSY: other processes used {host['others_cores']:.2f} of the "
            f"{host['cores']} cores during the run: rates and latencies are disturbed; "
            "CPU per unit still holds"
        )
    if out["failures"]:
        total = sum(out["failures"].values())
        warnings.append(f"{total} failures: {out['failures']}")
    return warnings


__all__ = ["BenchError", "RemoteTargetError", "run"]
