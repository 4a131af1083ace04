"""``uvgate-bench cluster``: what scaling out through Redis costs, next to one node.

Two jobs, each as interleaved rounds so a drifting background load is shared evenly:

* **fan-out**: N Pusher subscribers on one private channel and a publisher triggering
  through the signed HTTP API. *single*: one ``uvgate serve``. *cluster*: two nodes
  (``--redis``, ``--node-id 1`` and ``2``) with the subscribers spread over both and the
  publisher on node 1, so every event goes through one Redis PUBLISH and comes back to
  both nodes. Figures: server CPU per delivery (the uvgate processes; Redis's own CPU is
  reported beside it), deliveries/s, trigger-to-delivery latency p50/p99, and the ratios
  cluster / single.
* **hold** (``--hold N``): N Pusher connections with one subscription each, held against
  ``uvgate serve --workers W --redis``; RSS per connection of all the workers.

It needs Debian's ``redis-server`` (``scripts/test-deps.sh`` installs it). Results go to
``bench/results/cluster.{json,md}``; every figure says which side was the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .compare import SECRET, machine_info
from .config import RunConfig
from .procstat import cpu_seconds
from .report import public, write_json
from .runner import run
from .servers import BENCH_DIR, ServerPool, free_port

HOST = "127.0.0.1"
APP = {"id": "12345", "key": "app-key", "secret": "app-secret"}


def add_cluster_parser(sub: Any) -> None:
    p = sub.add_parser("cluster", help="fan-out through Redis over two nodes, next to one node")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--window", type=int, default=2, help="triggers in flight (closed loop)")
    p.add_argument(
        "--publish-rate",
        type=float,
        default=50.0,
        help="triggers per second (default 50; 0: closed loop with --window). A cluster node "
        "answers a trigger once Redis has it, before the deliveries: in closed loop the "
        "publisher outruns the deliveries and the latency measures the queue.",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each setup")
    p.add_argument(
        "--latency-subscribers",
        type=int,
        default=20,
        help="subscribers of the latency job (few, at --latency-rate: the hop, not a queue)",
    )
    p.add_argument("--latency-rate", type=float, default=20.0, help="triggers/s of the latency job")
    p.add_argument("--hold", type=int, default=0, help="also hold this many Pusher connections")
    p.add_argument("--workers", type=int, default=2, help="uvgate --workers for --hold")
    p.add_argument("--procs", type=int, default=2, help="generator processes for --hold")
    p.add_argument("--out", default="")


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("cluster: redis-server is not installed (scripts/test-deps.sh)")
    port = free_port(HOST)
    workdir = tempfile.mkdtemp(prefix="uvgate-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", workdir, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((HOST, port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0", proc
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _serve(port: int, *extra: str) -> list[str]:
    import json

    return [
        sys.executable, "-m", "gateway", "serve", "--host", HOST, "--port", str(port),
        "--secret", SECRET, "--apps", json.dumps([APP]), "--log-level", "warning",
        "--auth-fail-limit", "1000000", *extra,
    ]  # fmt: skip


def _fanout(
    cfg_args: argparse.Namespace,
    port: int,
    spread: list[int],
    pids: list[int],
    subscribers: int,
    rate: float,
) -> dict[str, Any]:
    cfg = RunConfig(
        scenario="fanout",
        protocol="pusher",
        host=HOST,
        port=port,
        spread=spread,
        app_id=APP["id"],
        app_key=APP["key"],
        app_secret=APP["secret"],
        subscribers=subscribers,
        duration=cfg_args.duration,
        window=cfg_args.window,
        publish_rate=rate,
        server_pids=pids,
        timeout=300.0,
        label="cluster" if spread else "single",
    )
    return run(cfg, show_progress=False)


def _one(res: dict[str, Any], redis_cpu: float) -> dict[str, Any]:
    deliveries = max(1, int(res.get("deliveries", 0)))
    lat = res.get("latency_ms", {}).get("delivery_ms", {})
    return {
        "server_us_per_delivery": (res.get("server") or {}).get("cpu_us_per_delivery"),
        "redis_us_per_delivery": redis_cpu * 1e6 / deliveries,
        "deliveries_per_s": res.get("deliveries_per_s"),
        "delivery_p50_ms": lat.get("p50"),
        "delivery_p99_ms": lat.get("p99"),
        "lost": res.get("expected_deliveries", 0) - res.get("deliveries", 0),
        "bound_by": (res.get("bottleneck") or {}).get("side", ""),
        "published": res.get("published"),
    }


def cluster_main(args: argparse.Namespace) -> int:
    outdir = args.out or os.path.join(BENCH_DIR, "results")
    os.makedirs(outdir, exist_ok=True)
    jobs = {
        "cost": (args.subscribers, args.publish_rate),
        "latency": (args.latency_subscribers, args.latency_rate),
    }
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {
        job: {"single": [], "cluster": []} for job in jobs
    }
    hold: dict[str, Any] | None = None
    with redis_server() as (url, redis), ServerPool(os.path.join(outdir, "tmp")) as pool:
        for n in range(args.rounds):
            order = ("single", "cluster") if n % 2 == 0 else ("cluster", "single")
            for setup in order:
                if setup == "single":
                    port = free_port(HOST)
                    proc = pool.start(_serve(port), HOST, port, "cluster-single", None)
                    procs, spread = [proc], []
                else:
                    prefix = f"bench{n}"
                    ports = [free_port(HOST), free_port(HOST)]
                    procs = [
                        pool.start(
                            _serve(p, "--redis", url, "--redis-prefix", prefix, "--node-id", str(i + 1)),
                            HOST, p, f"cluster-node{i + 1}", None,
                        )
                        for i, p in enumerate(ports)
                    ]  # fmt: skip
                    port, spread = ports[0], ports[1:]
                time.sleep(0.5)
                for job, (subscribers, rate) in jobs.items():
                    before = cpu_seconds(redis.pid)
                    res = _fanout(args, port, spread, [p.pid for p in procs], subscribers, rate)
                    figures = _one(res, cpu_seconds(redis.pid) - before)
                    rounds[job][setup].append(figures)
                    print(f"round {n + 1} {job} {setup}: {figures}", flush=True)
                for proc in procs:
                    pool.stop(proc)
        if args.hold:
            port = free_port(HOST)
            proc = pool.start(
                _serve(port, "--workers", str(args.workers), "--redis", url, "--redis-prefix", "hold",
                       "--max-connections", str(args.hold + 1000)),
                HOST, port, "cluster-hold", None, timeout=60,
            )  # fmt: skip
            time.sleep(1.0)
            cfg = RunConfig(
                scenario="hold",
                protocol="pusher",
                host=HOST,
                port=port,
                app_id=APP["id"],
                app_key=APP["key"],
                app_secret=APP["secret"],
                connections=args.hold,
                rate=2000.0,
                hold_s=5.0,
                procs=args.procs,
                concurrency=100,
                server_pids=[proc.pid],
                server_children=True,
                timeout=900.0,
                connect_timeout=30.0,
                label=f"uvgate --workers {args.workers} --redis",
            )
            hold = public(run(cfg, show_progress=False))
    summary = {job: _summary(job_rounds) for job, job_rounds in rounds.items()}
    result = {
        "machine": machine_info(),
        "args": vars(args),
        "rounds": rounds,
        "summary": summary,
        "hold": hold,
    }
    write_json(os.path.join(outdir, "cluster.json"), result)
    text = _markdown(args, result)
    with open(os.path.join(outdir, "cluster.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


def _median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    return statistics.median(numbers) if numbers else None


def _summary(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    keys = ("server_us_per_delivery", "redis_us_per_delivery", "deliveries_per_s",
            "delivery_p50_ms", "delivery_p99_ms", "lost")  # fmt: skip
    out: dict[str, Any] = {}
    for setup, runs in rounds.items():
        out[setup] = {k: _median([r[k] for r in runs]) for k in keys}
        out[setup]["bound_by"] = sorted({r["bound_by"] for r in runs})
    single, cluster = out.get("single", {}), out.get("cluster", {})
    ratio: dict[str, float | None] = {}
    for k in ("server_us_per_delivery", "deliveries_per_s"):
        a, b = single.get(k), cluster.get(k)
        ratio[k] = (b / a) if a and b else None
    for k in ("delivery_p50_ms", "delivery_p99_ms"):
        a, b = single.get(k), cluster.get(k)
        ratio[f"added_{k}"] = (b - a) if a is not None and b is not None else None
    out["cluster_vs_single"] = ratio
    return out


def _fmt(value: Any, spec: str = "{:.2f}") -> str:
    return spec.format(value) if isinstance(value, int | float) else "-"


def _markdown(args: argparse.Namespace, result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Fan-out through Redis over two nodes, next to one node\n",
        f"- command: `python -m bench {' '.join(sys.argv[1:]) or 'cluster'}`",
        f"- date: {m['date_utc']}; machine: {m['cpu_model']}, {m['cores']} cores, "
        f"kernel {m['kernel']}, Python {m['python']}",
        f"- medians of {args.rounds} interleaved rounds of each job and setup, {args.duration} s "
        "each; Pusher subscribers on one private channel, triggers through the signed HTTP API. "
        "Nothing pinned: two nodes, Redis and the generator share 2 cores.",
        f"- cost: {args.subscribers} subscribers, {_rate(args)} (server CPU per delivery; "
        "the close of the subscribers after the run is not counted)",
        f"- latency: {args.latency_subscribers} subscribers, {args.latency_rate:g} triggers/s "
        "(trigger-to-delivery time, the generator far from its limit)\n",
    ]
    for job in ("cost", "latency"):
        lines += _table(job, result["summary"][job])
    hold = result.get("hold")
    if hold:
        per = (hold.get("server_rss") or {}).get("per_connection") or 0
        lines += [
            "",
            f"Held: {hold.get('held', 0):,} of {args.hold:,} Pusher connections, one subscription "
            f"each, against `uvgate serve --workers {args.workers} --redis`: "
            f"{per / 1024:.2f} KiB RSS per connection (all workers).",
        ]
    return "\n".join(lines) + "\n"


def _table(job: str, s: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"**{job}**\n",
        "| setup | server us/delivery | Redis us/delivery | deliveries/s | p50 ms | p99 ms | lost | bound by |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for setup in ("single", "cluster"):
        f = s[setup]
        lines.append(
            f"| {setup} | {_fmt(f['server_us_per_delivery'])} | {_fmt(f['redis_us_per_delivery'])} | "
            f"{_fmt(f['deliveries_per_s'], '{:,.0f}')} | {_fmt(f['delivery_p50_ms'])} | "
            f"{_fmt(f['delivery_p99_ms'])} | {_fmt(f['lost'], '{:.0f}')} | {', '.join(f['bound_by'])} |"
        )
    r = s["cluster_vs_single"]
    lines += [
        "",
        f"Cluster / single: server CPU per delivery x{_fmt(r['server_us_per_delivery'])}, "
        f"deliveries/s x{_fmt(r['deliveries_per_s'])}; latency added by the Redis hop: "
        f"p50 {_fmt(r['added_delivery_p50_ms'])} ms, p99 {_fmt(r['added_delivery_p99_ms'])} ms.",
    ]
    return lines


def _rate(args: argparse.Namespace) -> str:
    if args.publish_rate > 0:
        return f"{args.publish_rate:g} per second"
    return f"closed loop, {args.window} in flight"
