"""``uvgate-bench`` / ``python -m bench``: a WebSocket load generator and the comparison driver.

    uvgate-bench connect --url ws://127.0.0.1:6001/ws --secret S -n 20000 -c 100 --server-pid PID
    uvgate-bench hold    --url ws://127.0.0.1:6001/ws -n 10000 --rate 2000 --hold 10 --server-pid PID
    uvgate-bench echo    --url ws://127.0.0.1:6001/ws -c 100 --duration 5 --size 32 --depth 4
    uvgate-bench fanout  --url ws://127.0.0.1:6001/ws --subscribers 1000 --duration 5
    uvgate-bench fanout  --protocol pusher --url ws://127.0.0.1:6001 --app-id 12345 \\
                         --app-key app-key --app-secret app-secret --subscribers 1000
    uvgate-bench compare [--quick] [--only uvgate,raw,...]
    uvgate-bench hold100k
    uvgate-bench fuzz    --url ws://127.0.0.1:6001/ws --secret S --duration 120 --server-pid PID
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .config import MAX_CONNECTIONS, MAX_DURATION_S, MAX_TIMEOUT_S, RunConfig
from .guard import RemoteTargetError
from .report import markdown, plot_run, public, write_json
from .runner import BenchError, run


def _cpus(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def _common(p: argparse.ArgumentParser, scenario: str) -> None:
    g = p.add_argument_group("target")
    g.add_argument(
        "--url",
        default="ws://127.0.0.1:6001/ws",
        help="ws:// URL (path used by native; default: uvgate's default port)",
    )
    g.add_argument(
        "--protocol",
        choices=("native", "pusher"),
        default="native",
        help="native: uvgate's first-message auth; pusher: Pusher protocol v7",
    )
    g.add_argument(
        "--secret",
        default=os.environ.get("UVGATE_BENCH_SECRET", "bench-secret"),
        help="HMAC token secret (native)",
    )
    g.add_argument("--app-id", default="12345", help="Pusher app id (HTTP API)")
    g.add_argument("--app-key", default="app-key", help="Pusher app key")
    g.add_argument("--app-secret", default="app-secret", help="Pusher app secret")
    g.add_argument(
        "--http-url", default="", help="Pusher HTTP API base (default: the ws host:port)"
    )
    g.add_argument("--group", default="bench", help="native chat group (Pusher: private-GROUP)")
    g.add_argument(
        "--spread",
        type=int,
        action="append",
        default=[],
        help="another port of the same host (a node of a cluster): connections are spread "
        "round robin over the URL's port and these (repeatable); the publisher stays on the "
        "URL (or --http-url)",
    )
    g.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback target (only for a host you own)",
    )
    r = p.add_argument_group("run")
    r.add_argument("--procs", type=int, default=1, help="generator processes")
    r.add_argument(
        "--generator",
        choices=("auto", "native", "python"),
        default="auto",
        help="auto (default): the native C client (built on demand with the system compiler) "
        "when it can run, else the Python one; native or python to force one",
    )
    r.add_argument(
        "--cpus",
        "--generator-cpu",
        type=_cpus,
        default=[],
        dest="cpus",
        help="pin generator processes, e.g. 1 or 0-1",
    )
    r.add_argument(
        "--busy-poll",
        action="store_true",
        help="native generator: poll without sleeping, so the server never pays for waking "
        "it (needs --cpus of its own; the idle polling is reported, not counted as load)",
    )
    r.add_argument(
        "--server-cpu",
        type=_cpus,
        default=[],
        dest="server_cpus",
        help="pin the --server-pid processes (every thread) to these CPUs, e.g. 0",
    )
    r.add_argument(
        "--source",
        action="append",
        default=[],
        dest="sources",
        help="source address to bind (repeatable; 127.0.0.2, 127.0.0.3...)",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help=f"overall time limit in s (max {MAX_TIMEOUT_S:.0f})",
    )
    r.add_argument("--connect-timeout", type=float, default=10.0)
    r.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        dest="server_pids",
        help="server process id for CPU/RSS (repeatable, summed)",
    )
    r.add_argument(
        "--server-children",
        action="store_true",
        help="also count every child process of the --server-pid processes",
    )
    r.add_argument("--label", default="")
    o = p.add_argument_group("output")
    o.add_argument("--json", default="", help="write the result as JSON to this file")
    o.add_argument("--plot", default="", help="write PNG charts into this directory")
    o.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="uvgate-bench",
        description="Load generator for any WebSocket server (uvgate native protocol or Pusher v7).",
        epilog="examples:" + (__doc__ or "").split("\n", 1)[1].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("connect", help="N new connections: connect+handshake+auth+reply+close")
    _common(p, "connect")
    p.add_argument("-n", "--connections", type=int, default=5000, help=f"max {MAX_CONNECTIONS}")
    p.add_argument("-c", "--concurrency", type=int, default=50)

    p = sub.add_parser("hold", help="ramp to N authenticated connections and hold them")
    _common(p, "hold")
    p.add_argument("-n", "--connections", type=int, default=10000, help=f"max {MAX_CONNECTIONS}")
    p.add_argument("--rate", type=float, default=2000.0, help="new connections/s (0 = no pacing)")
    p.add_argument("-c", "--concurrency", type=int, default=500, help="dials in flight per process")
    p.add_argument("--hold", type=float, default=10.0, dest="hold_s", help="seconds to hold")

    p = sub.add_parser("echo", help="C connections echoing small messages")
    _common(p, "echo")
    p.add_argument("-c", "--concurrency", type=int, default=50, help="connections")
    p.add_argument(
        "--duration", type=float, default=5.0, help=f"seconds (max {MAX_DURATION_S:.0f})"
    )
    p.add_argument("--size", type=int, default=32, help="message bytes")
    p.add_argument("--depth", type=int, default=1, help="messages in flight per connection")
    p.add_argument("--binary", action="store_true", help="binary frames (default text)")

    p = sub.add_parser(
        "fanout", help="N subscribers, one publisher broadcasting through the server"
    )
    _common(p, "fanout")
    p.add_argument("--subscribers", type=int, default=1000, help="subscriber connections")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of publishing")
    p.add_argument(
        "--publish-rate",
        type=float,
        default=0.0,
        help="publishes/s; 0 = closed loop keeping --window publishes in flight",
    )
    p.add_argument(
        "--window",
        type=int,
        default=2,
        help="closed loop: publishes in flight (Pusher: parallel HTTP connections)",
    )

    p = sub.add_parser("compare", help="side-by-side: uvgate vs the peer servers")
    p.add_argument("--quick", action="store_true", help="small counts, one run each (< 3 min)")
    p.add_argument(
        "--only",
        default="",
        help="comma list: uvgate,raw,picows,socketify,websockets,aiohttp,node",
    )
    p.add_argument(
        "--generator",
        choices=("auto", "native", "python"),
        default="auto",
        help="load generator for every run (default auto: native when it can be built)",
    )
    p.add_argument("--runs", type=int, default=0, help="runs per figure (default 3, quick 1)")
    p.add_argument("--out", default="", help="results directory (default bench/results)")
    p.add_argument("--no-markdown", action="store_true", help="do not rewrite bench/RESULTS.md")
    p.add_argument(
        "--pusher",
        action="store_true",
        help="also compare over Pusher v7 (uvgate /app/{key} vs raw_probe --app pusher)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=-1.0,
        help="max seconds to wait before each run for a quiet host "
        "(default 10, quick 3; at most 150 s / 20 s in all; 0 = never wait)",
    )

    from .fuzz import add_fuzz_parser  # robustness mode: its own module (bench/fuzz.py)

    add_fuzz_parser(sub)

    from .cluster import add_cluster_parser  # fan-out through Redis (bench/cluster.py)

    add_cluster_parser(sub)

    p = sub.add_parser("hold100k", help="100,000 connections held against uvgate (several workers)")
    p.add_argument("--connections", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=8, help="uvgate --workers")
    p.add_argument("--procs", type=int, default=6, help="generator processes (>= 6 for 100k)")
    p.add_argument("--rate", type=float, default=2000.0, help="new connections/s")
    p.add_argument("--concurrency", type=int, default=100, help="dials in flight per process")
    p.add_argument("--hold", type=float, default=10.0, dest="hold_s")
    p.add_argument("--out", default="")
    return ap


def config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = RunConfig(scenario=args.cmd)
    cfg.set_url(args.url)
    if args.http_url:
        h = RunConfig()
        h.set_url(args.http_url.replace("http://", "ws://", 1))
        cfg.http_host, cfg.http_port = h.host, h.port
    for name in (
        "protocol",
        "secret",
        "app_id",
        "app_key",
        "app_secret",
        "group",
        "allow_remote",
        "procs",
        "cpus",
        "sources",
        "timeout",
        "connect_timeout",
        "server_pids",
        "server_children",
        "label",
        "connections",
        "concurrency",
        "rate",
        "hold_s",
        "duration",
        "size",
        "depth",
        "binary",
        "subscribers",
        "publish_rate",
        "window",
        "generator",
        "server_cpus",
        "spread",
        "busy_poll",
    ):
        if hasattr(args, name):
            setattr(cfg, name, getattr(args, name))
    return cfg


def failure_verdict(res: dict[str, Any]) -> str | None:
    """Why the run counts as failed (exit status 1), or None.

    The rule: a run fails when no connection was set up, when more connections failed
    than succeeded (most of the attempts), or when the measured work is zero (echo
    without a message, fanout without a delivery).
    """
    ok = int(res["ok"])
    failed = sum(res["failures"].values())
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(res["failures"].items()))
    if ok == 0:
        return f"every connection failed ({kinds or 'none set up'}); target {res['target']}"
    if failed > ok:
        return f"most connections failed: {failed} failures, {ok} ok ({kinds})"
    if not res.get("units"):
        return f"no {res['unit']} was measured ({ok} connections ok)"
    return None


def run_and_report(
    cfg: RunConfig, json_path: str = "", plot_dir: str = "", quiet: bool = False
) -> dict[str, Any]:
    res = run(cfg, show_progress=False if quiet else None)
    print(markdown(res))
    if json_path:
        write_json(json_path, public(res))
        print(f"JSON: {json_path}")
    if plot_dir:
        for path in plot_run(res, plot_dir):
            print(f"chart: {path}")
    return res


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "compare":
            from .compare import compare_main

            return compare_main(args)
        if args.cmd == "hold100k":
            from .compare import hold100k_main

            return hold100k_main(args)
        if args.cmd == "fuzz":
            from .fuzz import fuzz_main

            return fuzz_main(args)
        if args.cmd == "cluster":
            from .cluster import cluster_main

            return cluster_main(args)
        cfg = config_from_args(args)
        res = run_and_report(cfg, args.json, args.plot, args.quiet)
        why = failure_verdict(res)
        if why:
            print(f"uvgate-bench: run failed: {why}", file=sys.stderr)
            return 1
    except (RemoteTargetError, ValueError) as exc:
        print(f"uvgate-bench: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"uvgate-bench: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nuvgate-bench: interrupted", file=sys.stderr)
        return 130
    return 0
