"""``uvgate-bench fuzz``: hostile and broken inputs at a server while good clients work.

    uvgate-bench fuzz --url ws://127.0.0.1:6001/ws --secret S --duration 120 --server-pid PID

Mutated connections (``bench/fuzz_cases.py``: slowloris, oversize headers, pipelining,
random bytes, truncated / badly masked / oversize / malformed frames, bad UTF-8, bad
extension offers...) run ``--concurrency`` at a time, up to ``--count`` of them or
``--duration`` seconds, while ``--good-clients`` connections keep authenticating (native
first message, a fresh connection every few seconds) and echoing, checking every reply.

The report says what a user needs to trust a server: the good clients' failures, whether
the server is alive at the end (its pid, and a fresh client that authenticates and
echoes), its RSS before / after warm-up / plateau / max / after and open fds before and
after (from /proc/PID with ``--server-pid``), and for each input kind how it was answered:
an HTTP status, a close code, a normal reply, silently dropped, or no answer before the
deadline. Exit status 1 when a good client failed or the server died, 2 for bad options.
Loopback targets only unless ``--allow-remote``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .fuzz_cases import KINDS, Plan, Target, make_plan
from .fuzz_clients import (
    CATEGORIES,
    GoodSpec,
    GoodStats,
    good_loop,
    probe,
    probe_upgrade,
    run_plan,
)
from .guard import RemoteTargetError, check_target
from .procstat import rss_bytes, start_time

MAX_DURATION_S = 1800.0
MAX_COUNT = 1_000_000
MAX_CONCURRENCY = 256
MAX_GOOD_CLIENTS = 64
UNREACHABLE_AFTER = 50

# What a robust server does with each kind (a hint printed next to the figures).
EXPECTED = {
    "slowloris": "dropped (or 408) within the server's handshake timeout",
    "oversize_headers": "status 431",
    "pipelining": "every request answered (or a status refusing the rest)",
    "random_bytes_head": "status 400",
    "bad_request_line": "status 400 / 505",
    "bad_key": "status 400",
    "bad_ws_version": "status 426 (or 400)",
    "bad_extension_offer": "status 101 without the extension (or 400)",
    "bad_http_body": "status 4xx/5xx",
    "truncated_head_half_close": "dropped (nothing to answer) or 400",
    "truncated_frame": "timeout (waits for the rest)",
    "bad_utf8": "close 1007",
    "bad_mask": "close 1002 (unmasked) / a refusal of the garbled message",
    "huge_length": "close 1009 / 1002",
    "reserved_bits_or_opcode": "close 1002",
    "bad_fragmentation_or_control": "close 1002",
    "bad_close": "close 1002 / 1007",
    "compressed_frames": "close 1002 (not negotiated) / 1007",
    "message_too_big": "close 1009",
    "random_bytes_frames": "close 1002 / 1007 / 1009 or timeout",
    "ping_flood": "replied (pongs)",
    "valid_frame_byte_by_byte": "replied or an auth close",
    "bit_flipped_frames": "a close code, a reply or timeout",
}


@dataclass(slots=True)
class FuzzConfig:
    target: Target
    duration: float = 60.0
    count: int = 20_000
    concurrency: int = 16
    good_clients: int = 4
    good_interval: float = 0.05
    reconnect_every: float = 5.0
    seed: int = 0
    kinds: list[str] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)
    good_source: str | None = None
    attack_sources: list[str | None] = field(default_factory=lambda: [None])
    settle: float = 10.0
    quiet: bool = False

    def good_spec(self) -> GoodSpec:
        return GoodSpec(
            self.target,
            self.good_interval,
            self.reconnect_every,
            self.good_source,
            self.seed,
        )


# -- server process: RSS and fds ------------------------------------------------------------


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, D, Z for a zombie...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :][:1].decode() or None


class Monitor:
    """Samples the server's RSS and fd count once a second (summed over its pids)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.starts = {p: start_time(p) for p in pids}
        self.samples: list[tuple[float, int, int]] = []  # (t, rss, fds)

    def alive(self) -> bool | None:
        """None without pids; else every pid is the process first seen and not a zombie."""
        if not self.pids:
            return None
        return all(
            start_time(p) == self.starts[p] is not None and _state(p) not in ("Z", "X", None)
            for p in self.pids
        )

    def sample(self) -> tuple[int, int] | None:
        if not self.pids or not self.alive():
            return None
        fds = [fd_count(p) for p in self.pids]
        return sum(rss_bytes(p) for p in self.pids), sum(f or 0 for f in fds)

    async def run(self, t0: float) -> None:
        while True:
            s = self.sample()
            if s is not None:
                self.samples.append((time.monotonic() - t0, *s))
            await asyncio.sleep(1.0)


def rss_summary(samples: list[tuple[float, int, int]], warm_s: float) -> dict[str, Any]:
    """Warm = first sample after ``warm_s``; plateau = median of the last half; trend =
    least-squares slope of the last half in KiB per minute (flat is ~0)."""
    if not samples:
        return {}
    warm = next((s[1] for s in samples if s[0] >= warm_s), samples[-1][1])
    half = samples[len(samples) // 2 :]
    trend = 0.0
    if len(half) >= 3:
        ts = [s[0] for s in half]
        rs = [s[1] for s in half]
        mt, mr = statistics.fmean(ts), statistics.fmean(rs)
        var = sum((t - mt) ** 2 for t in ts)
        if var:
            trend = sum((t - mt) * (r - mr) for t, r in zip(ts, rs, strict=True)) / var
    return {
        "rss_warm": warm,
        "rss_plateau": int(statistics.median(s[1] for s in half)),
        "rss_max": max(s[1] for s in samples),
        "rss_trend_kib_per_min": round(trend * 60 / 1024, 1),
        "fds_max": max(s[2] for s in samples),
    }


# -- the run ----------------------------------------------------------------------------------


async def fuzz_run(cfg: FuzzConfig) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    monitor = Monitor(cfg.server_pids)
    t0 = time.monotonic()
    before = monitor.sample()
    monitor_task = asyncio.create_task(monitor.run(t0))
    good = GoodStats()
    spec = cfg.good_spec()
    stop_good = asyncio.Event()
    good_tasks = [
        asyncio.create_task(good_loop(spec, good, i, stop_good)) for i in range(cfg.good_clients)
    ]
    kinds: dict[str, Counter[str]] = {}
    details: dict[str, Counter[str]] = {}
    sem = asyncio.Semaphore(cfg.concurrency)
    deadline = t0 + cfg.duration
    started = 0
    pending: set[asyncio.Task[None]] = set()
    unreachable = [0]  # connect failures in a row: the server is gone, stop sending

    async def one(plan: Plan, source: str | None) -> None:
        try:
            category, detail = await run_plan(cfg.target, plan, source)
        except Exception as exc:  # a bug in this tool must not stop the run
            category, detail = "dropped", f"client error {type(exc).__name__}"
        finally:
            sem.release()
        unreachable[0] = unreachable[0] + 1 if category == "connect_failed" else 0
        kinds.setdefault(plan.kind, Counter())[category] += 1
        details.setdefault(plan.kind, Counter())[detail] += 1

    last_print = t0
    stopped = ""
    while started < cfg.count and time.monotonic() < deadline:
        if unreachable[0] >= UNREACHABLE_AFTER:
            stopped = f"{UNREACHABLE_AFTER} connections in a row could not connect"
            break
        await sem.acquire()
        if time.monotonic() >= deadline:
            sem.release()
            break
        plan = make_plan(rng, cfg.target, cfg.kinds or None)
        source = cfg.attack_sources[started % len(cfg.attack_sources)]
        task = asyncio.create_task(one(plan, source))
        pending.add(task)
        task.add_done_callback(pending.discard)
        started += 1
        if not cfg.quiet and time.monotonic() - last_print > 10:
            last_print = time.monotonic()
            print(
                f"  {last_print - t0:5.0f} s: {started} mutated connections, good echoes "
                f"{good.echoes}, good failures {sum(good.failures.values())}",
                file=sys.stderr,
                flush=True,
            )
    if pending:
        await asyncio.wait(pending, timeout=30)
    stop_good.set()
    await asyncio.wait(good_tasks, timeout=15)
    elapsed = time.monotonic() - t0

    # Let the server drop what it still holds, then compare with the start.
    fds_before = before[1] if before else None
    settle_end = time.monotonic() + cfg.settle
    after = monitor.sample()
    while after is not None and fds_before is not None and after[1] > fds_before:
        if time.monotonic() >= settle_end:
            break
        await asyncio.sleep(0.5)
        after = monitor.sample()
    monitor_task.cancel()
    alive_pid = monitor.alive()
    probe_result = await (probe(spec) if cfg.good_clients else probe_upgrade(cfg.target))
    alive = probe_result == "ok" and alive_pid is not False
    server: dict[str, Any] = {
        "alive": alive,
        "pid_alive": alive_pid,
        "probe": probe_result,
        "rss_before": before[0] if before else None,
        "rss_after": after[0] if after else None,
        "fds_before": fds_before,
        "fds_after": after[1] if after else None,
    }
    server.update(rss_summary(monitor.samples, warm_s=min(10.0, cfg.duration / 5)))
    return build_report(cfg, elapsed, started, good, server, kinds, details, stopped)


def build_report(
    cfg: FuzzConfig,
    elapsed: float,
    cases: int,
    good: GoodStats,
    server: dict[str, Any],
    kinds: dict[str, Counter[str]],
    details: dict[str, Counter[str]],
    stopped: str = "",
) -> dict[str, Any]:
    per_kind: dict[str, dict[str, Any]] = {}
    for name in sorted(kinds):
        counts = kinds[name]
        per_kind[name] = {
            "count": sum(counts.values()),
            **{c: counts.get(c, 0) for c in CATEGORIES},
            "details": dict(details[name].most_common()),
            "expected": EXPECTED.get(name, ""),
        }
    t = cfg.target
    return {
        "target": f"ws://{t.host}:{t.port}{t.path}",
        "seed": cfg.seed,
        "seconds": round(elapsed, 1),
        "cases": cases,
        "stopped_early": stopped or None,
        "concurrency": cfg.concurrency,
        "good": {
            "clients": cfg.good_clients,
            "sessions": good.sessions,
            "authenticated": good.auths,
            "echoes": good.echoes,
            "failures": dict(good.failures),
        },
        "server": server,
        "kinds": per_kind,
        "no_answer": {
            k: v["dropped"] + v["timeout"]
            for k, v in per_kind.items()
            if v["dropped"] + v["timeout"]
        },
        "ok": not good.failures and server["alive"],
    }


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1048576:.1f} MiB"


# --server-pid: the process still there, gone, or not watched.
_PID_STATE = {True: "pid alive", False: "pid GONE", None: "no --server-pid"}


def format_report(rep: dict[str, Any]) -> str:
    g, s = rep["good"], rep["server"]
    fails = ", ".join(f"{k} {v}" for k, v in g["failures"].items()) or "none"
    lines = [
        f"## uvgate-bench fuzz: {rep['target']} (seed {rep['seed']})",
        "",
        f"{rep['cases']:,} mutated connections in {rep['seconds']:.0f} s, "
        f"{rep['concurrency']} at a time"
        + (f" (stopped early: {rep['stopped_early']})" if rep["stopped_early"] else ""),
        f"good clients: {g['clients']}, {g['sessions']} sessions, {g['authenticated']} authenticated, "
        f"{g['echoes']:,} echoes checked; failures: {fails}",
        f"server alive: {'yes' if s['alive'] else 'NO'} ({_PID_STATE[s['pid_alive']]}, "
        f"probe {s['probe']})",
        f"RSS: before {_mib(s.get('rss_before'))}, after warm-up {_mib(s.get('rss_warm'))}, "
        f"plateau {_mib(s.get('rss_plateau'))}, max {_mib(s.get('rss_max'))}, "
        f"after {_mib(s.get('rss_after'))}; trend over the last half "
        f"{s.get('rss_trend_kib_per_min', 'n/a')} KiB/min",
        f"fds: before {s.get('fds_before')}, max {s.get('fds_max')}, after {s.get('fds_after')}",
        "",
        "| input kind | sent | status | close | replied | dropped | timeout | conn. failed | answers (most common) | a robust server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, k in rep["kinds"].items():
        top = "; ".join(f"{d} x{n}" for d, n in list(k["details"].items())[:3])
        lines.append(
            f"| {name} | {k['count']} | {k['status']} | {k['close']} | {k['replied']} | "
            f"{k['dropped']} | {k['timeout']} | {k['connect_failed']} | {top} | {k['expected']} |"
        )
    no_answer = ", ".join(f"{k} {v}" for k, v in rep["no_answer"].items()) or "none"
    lines += ["", f"no answer (dropped or timed out): {no_answer}"]
    lines.append(
        "RESULT: " + ("OK" if rep["ok"] else "FAILED (good-client failures or server down)")
    )
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------


def add_fuzz_parser(sub: Any) -> None:
    p = sub.add_parser("fuzz", help="mutated handshakes/frames while good clients echo")
    p.add_argument(
        "--url", default="ws://127.0.0.1:6001/ws", help="ws:// URL of the native endpoint"
    )
    p.add_argument("--secret", default=os.environ.get("UVGATE_BENCH_SECRET", "bench-secret"))
    p.add_argument(
        "--duration", type=float, default=60.0, help=f"seconds (max {MAX_DURATION_S:.0f})"
    )
    p.add_argument(
        "--count", type=int, default=20_000, help=f"mutated connections (max {MAX_COUNT})"
    )
    p.add_argument(
        "-c", "--concurrency", type=int, default=16, help="mutated connections at a time"
    )
    p.add_argument("--good-clients", type=int, default=4, help="0 for a server without native auth")
    p.add_argument("--good-interval", type=float, default=0.05, help="seconds between echoes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="", help=f"comma list (default all): {','.join(KINDS)}")
    p.add_argument("--deflate", action="store_true", help="also offer permessage-deflate")
    p.add_argument("--server-pid", type=int, action="append", default=[], dest="server_pids")
    p.add_argument(
        "--attack-sources",
        type=int,
        default=64,
        help="loopback source addresses for mutated connections (127.0.1.x), so "
        "a per-IP limiter does not hide the parsers behind 429s (0: no binding)",
    )
    p.add_argument("--settle", type=float, default=10.0, help="max s to wait for fds to drop")
    p.add_argument("--allow-remote", action="store_true", help="a non-loopback host you own")
    p.add_argument("--json", default="", help="write the report as JSON to this file")
    p.add_argument("--quiet", action="store_true")


def config_from_args(args: argparse.Namespace) -> FuzzConfig:
    url = urlsplit(args.url)
    if url.scheme != "ws" or not url.hostname:
        raise ValueError("--url must be ws://host:port/path (wss is not supported here)")
    check_target(url.hostname, args.allow_remote)
    if not 0 < args.duration <= MAX_DURATION_S:
        raise ValueError(f"--duration must be in (0, {MAX_DURATION_S:.0f}]")
    if not 0 < args.count <= MAX_COUNT:
        raise ValueError(f"--count must be in 1..{MAX_COUNT}")
    if not 0 < args.concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"--concurrency must be in 1..{MAX_CONCURRENCY}")
    if not 0 <= args.good_clients <= MAX_GOOD_CLIENTS:
        raise ValueError(f"--good-clients must be in 0..{MAX_GOOD_CLIENTS}")
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown --kinds {', '.join(sorted(unknown))}")
    host = url.hostname
    target = Target(host, url.port or 80, url.path or "/", args.secret, deflate=args.deflate)
    cfg = FuzzConfig(
        target,
        duration=args.duration,
        count=args.count,
        concurrency=args.concurrency,
        good_clients=args.good_clients,
        good_interval=args.good_interval,
        seed=args.seed,
        kinds=kinds,
        server_pids=args.server_pids,
        settle=args.settle,
        quiet=args.quiet,
    )
    try:
        v4_loopback = (
            ipaddress.ip_address(host).version == 4 and ipaddress.ip_address(host).is_loopback
        )
    except ValueError:
        v4_loopback = host == "localhost"
    if v4_loopback and args.attack_sources > 0:
        # Good clients and mutated ones come from different addresses: a server that
        # rate-limits failed authentications per IP must not refuse the good clients.
        cfg.good_source = "127.0.0.2"
        n = min(args.attack_sources, 250)
        cfg.attack_sources = [f"127.0.1.{i}" for i in range(1, n + 1)]
    return cfg


def fuzz_main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except (RemoteTargetError, ValueError) as exc:
        print(f"uvgate-bench: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop

        report = uvloop.run(fuzz_run(cfg))
    except KeyboardInterrupt:
        print("\nuvgate-bench: interrupted", file=sys.stderr)
        return 130
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"JSON: {args.json}")
    return 0 if report["ok"] else 1
