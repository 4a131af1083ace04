"""``python -m bench compare``: uvgate against the peer servers, same jobs, same machine.

Each server runs pinned to CPU 0 and the generator to CPU 1 (``taskset`` / sched_setaffinity),
every figure is the median of ``--runs`` runs, ratios are to uvgate. On loopback the
generator is often the limit, so the figure to compare is the server's CPU per unit
(us per connection / message / delivery), i.e. its capacity per core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .compare_report import (
    FIGURES,
    GEN_CPU,
    JOBS,
    PUSHER_JOBS,
    SERVER_CPU,
    bound_summary,
    median_figures,
    plot_compare,
    results_markdown,
)
from .config import RunConfig
from .report import markdown, plot_run, public, write_json
from .runner import BenchError, run
from .servers import BENCH_DIR, SERVERS, ServerPool, free_port

HOST = "127.0.0.1"
SECRET = "bench-compare-secret"


def job_params(quick: bool) -> dict[str, dict[str, Any]]:
    if quick:
        return {
            "connect": {"connections": 1500, "concurrency": 50},
            "echo": {"concurrency": 50, "duration": 2.0, "size": 32, "depth": 2},
            "fanout": {"subscribers": 500, "duration": 2.0, "window": 2},
            "hold": {"connections": 2000, "rate": 2000.0, "hold_s": 1.0, "concurrency": 500},
        }
    return {
        "connect": {"connections": 5000, "concurrency": 50},
        "echo": {"concurrency": 50, "duration": 5.0, "size": 32, "depth": 2},
        "fanout": {"subscribers": 1000, "duration": 5.0, "window": 2},
        "hold": {"connections": 10_000, "rate": 4000.0, "hold_s": 3.0, "concurrency": 500},
    }


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    node = ""
    try:
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": _loadavg(),
    }


_QUIET_BUDGET = [120.0]  # seconds of waiting for a quiet host left in this compare


def wait_quiet(max_wait: float, log: Callable[[str], None], limit: float = 0.3) -> float:
    """Wait (bounded) until the rest of the host uses under ``limit`` cores; returns that use.

    The machine may be shared with other work; a run started while something else burns a
    core measures that as much as the server.
    """
    from .procstat import host_cpu

    max_wait = min(max_wait, _QUIET_BUDGET[0])
    start = time.monotonic()
    end = start + max_wait
    waited = False
    while True:
        b0, _ = host_cpu()
        time.sleep(0.5)
        b1, _ = host_cpu()
        busy = (b1 - b0) / 0.5
        if busy < limit or time.monotonic() >= end:
            _QUIET_BUDGET[0] = max(0.0, _QUIET_BUDGET[0] - (time.monotonic() - start))
            if waited:
                state = "quiet" if busy < limit else "gave up waiting"
                log(f"  (host busy {busy:.2f} cores; {state})")
            return busy
        if not waited:
            log(f"  (host busy: other processes use {busy:.2f} cores; waiting <= {max_wait:.0f}s)")
            waited = True


def run_all(
    names: list[str],
    pool: ServerPool,
    params: dict[str, dict[str, Any]],
    runs: int,
    pin: bool,
    log: Callable[[str], None],
    quiet_wait: float = 0.0,
    protocol: str = "native",
    generator: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Every job against every server, runs interleaved (run 1 of each server, then run 2...).

    Interleaving spreads a drifting background load evenly over the servers instead of
    charging it to whichever server happened to run while the host was busy. Idle servers
    stay up (pinned, doing nothing) between their turns; hold gets a fresh server per run
    so the RSS baseline is honest.
    """
    per: dict[str, dict[str, Any]] = {n: {} for n in names}
    for scenario, app in JOBS if protocol == "native" else PUSHER_JOBS:
        procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        raw_last: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        try:
            for i in range(runs):
                for name in names:
                    if name in failed:
                        continue
                    spec = SERVERS[name]
                    command = spec.command if protocol == "native" else spec.pusher_command
                    assert command is not None
                    try:
                        if name not in procs or scenario == "hold":
                            if name in procs:
                                pool.stop(procs.pop(name)[0])
                            port = free_port(HOST)
                            proc = pool.start(
                                command(HOST, port, SECRET, app),
                                HOST,
                                port,
                                f"{name}-{protocol}-{scenario}",
                                SERVER_CPU if pin else None,
                            )
                            procs[name] = (proc, port)
                            time.sleep(0.3)
                        proc, port = procs[name]
                        cfg = RunConfig(
                            scenario=scenario,
                            host=HOST,
                            port=port,
                            secret=SECRET,
                            server_pids=[proc.pid],
                            server_children=spec.multiprocess,
                            cpus=[GEN_CPU] if pin else [],
                            # On its own CPU the generator never sleeps: a slower server
                            # would otherwise pay more for waking it (config.py).
                            busy_poll=pin,
                            timeout=240.0,
                            label=name,
                            protocol=protocol,
                            generator=generator,
                        )
                        for k, v in params[scenario].items():
                            setattr(cfg, k, v)
                        idle_busy = wait_quiet(quiet_wait, log)
                        res = run(cfg, show_progress=False)
                    except (BenchError, RuntimeError, OSError) as exc:
                        log(f"  {name:<10} {scenario:<7} FAILED: {exc}")
                        failed[name] = str(exc)
                        continue
                    res["host"]["busy_before_cores"] = idle_busy
                    raw_last[name] = res
                    results[name].append(public(res))
                    first = FIGURES[scenario][0][0]
                    val = median_figures(scenario, [results[name][-1]])[first]
                    flags = sorted({w.split(":")[0] for w in res["warnings"]})
                    shown = "-" if val is None else f"{val:.2f}"
                    log(
                        f"  {name:<10} {scenario:<7} run {i + 1}/{runs}: {first} = {shown} "
                        f"[{res['generator']['kind']} generator, {res['bottleneck']['side']}] "
                        f"{flags or ''}"
                    )
        finally:
            for proc, _port in procs.values():
                pool.stop(proc)
        for name in names:
            rs = results[name]
            if name in failed:
                per[name][scenario] = {"error": failed[name], "runs": rs}
                continue
            per[name][scenario] = {
                "runs": rs,
                "median": median_figures(scenario, rs),
                "generator_bound_runs": sum(
                    1 for r in rs if any("GENERATOR" in w for w in r["warnings"])
                ),
                "host_busy_runs": sum(
                    1 for r in rs if any("HOST-BUSY" in w for w in r["warnings"])
                ),
                "bound": bound_summary(rs),
                "_raw": raw_last.get(name, {}).get("_raw_latency_ms", {}),
                "_timeline": raw_last.get(name, {}).get("timeline", []),
            }
    return per


def _strip(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if not k.startswith("_")}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def compare_main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    quick = bool(args.quick)
    runs = args.runs or (1 if quick else 3)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SERVERS)
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise ValueError(f"unknown server(s) {unknown}; known: {', '.join(SERVERS)}")
    outdir = args.out or os.path.join(BENCH_DIR, "results")
    os.makedirs(outdir, exist_ok=True)
    pin = (os.cpu_count() or 1) >= 2
    quiet_wait = args.quiet_wait if args.quiet_wait >= 0 else (3.0 if quick else 10.0)
    _QUIET_BUDGET[0] = 20.0 if quick else 150.0
    params = job_params(quick)
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:]) or "compare"
    data: dict[str, Any] = {
        "command": f"python -m bench {argv}",
        "machine": machine_info(),
        "quick": quick,
        "runs": runs,
        "params": params,
        "servers": {},
        "skipped": {},
    }

    def log(msg: str) -> None:
        print(msg, flush=True)

    log(
        f"compare: servers {', '.join(names)}; {runs} run(s) per figure; "
        f"{'quick' if quick else 'full'}; server on CPU {SERVER_CPU}, generator on CPU {GEN_CPU}"
    )
    with ServerPool(os.path.join(outdir, "tmp")) as pool:
        ready: list[str] = []
        for name in names:
            why = SERVERS[name].check()
            if why:
                log(f"  {name:<10} skipped: {why}")
                data["skipped"][name] = why
            else:
                ready.append(name)
        generator = getattr(args, "generator", "auto")
        per = run_all(ready, pool, params, runs, pin, log, quiet_wait, generator=generator)
        data["servers"] = {n: {"scenarios": per[n]} for n in ready}
        if args.pusher:
            pnames = [n for n in ready if SERVERS[n].pusher_command is not None]
            per = run_all(
                pnames,
                pool,
                params,
                runs,
                pin,
                log,
                quiet_wait,
                protocol="pusher",
                generator=generator,
            )
            data["pusher"] = {n: {"scenarios": per[n]} for n in pnames}
    ref = "uvgate" if "uvgate" in data["servers"] else ("raw" if "raw" in data["servers"] else None)
    tag = "compare-quick" if quick else "compare"
    charts = plot_compare(data, outdir, tag)
    data["elapsed_s"] = time.monotonic() - started
    write_json(os.path.join(outdir, f"{tag}.json"), _strip(data))
    md = results_markdown(data, charts, ref)
    print("\n" + md)
    if not args.no_markdown:
        with open(os.path.join(BENCH_DIR, "RESULTS.md"), "w") as f:
            f.write(md)
    log(f"compare finished in {data['elapsed_s']:.0f}s; JSON {os.path.join(outdir, tag + '.json')}")
    return 0


def hold100k_main(args: argparse.Namespace) -> int:
    """100k held connections against uvgate with several workers and source addresses."""
    outdir = args.out or os.path.join(BENCH_DIR, "results")
    os.makedirs(outdir, exist_ok=True)
    why = SERVERS["uvgate"].check()
    if why:
        print(f"hold100k: uvgate not runnable: {why}", file=sys.stderr)
        return 1
    from .servers import _uvgate_cmd

    with ServerPool(os.path.join(outdir, "tmp")) as pool:
        port = free_port(HOST)
        # No pinning: 100k connections need both cores on both sides.
        proc = pool.start(
            _uvgate_cmd(args.workers)(HOST, port, SECRET, "echo"),
            HOST,
            port,
            "uvgate-hold100k",
            None,
            timeout=60,
        )
        time.sleep(1.0)
        cfg = RunConfig(
            scenario="hold",
            host=HOST,
            port=port,
            secret=SECRET,
            connections=args.connections,
            rate=args.rate,
            hold_s=args.hold_s,
            procs=args.procs,
            concurrency=args.concurrency,
            server_pids=[proc.pid],
            server_children=True,
            timeout=900.0,
            connect_timeout=30.0,
            label=f"uvgate --workers {args.workers}",
        )
        res = run(cfg)
    md = markdown(res)
    m = machine_info()
    header = (
        f"# {args.connections:,} connections held against uvgate\n\n"
        f"- command: `python -m bench {' '.join(sys.argv[1:]) or 'hold100k'}` (uvgate --workers "
        f"{args.workers}, {cfg.procs} generator procs, sources {cfg.sources})\n"
        f"- date: {m['date_utc']}\n- machine: {m['cpu_model']}, {m['cores']} cores, "
        f"kernel {m['kernel']}, Python {m['python']}\n\n"
    )
    print(header + md)
    write_json(os.path.join(outdir, "hold100k.json"), public(res))
    with open(os.path.join(outdir, "hold100k.md"), "w") as f:
        f.write(header + md)
    plot_run(res, outdir, "hold100k")
    return 0 if res["held"] >= args.connections * 0.99 else 1
