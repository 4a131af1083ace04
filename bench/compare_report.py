"""What ``python -m bench compare`` writes: the tables, the yardstick against the raw
probe and the targets of issue 10, the charts and RESULTS.md (the runs are in
``bench.compare``)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

from .servers import BENCH_DIR

SERVER_CPU = 0
GEN_CPU = 1

# name -> (scenario, app)
JOBS = [("connect", "echo"), ("echo", "echo"), ("fanout", "chat"), ("hold", "echo")]
# --pusher: the same jobs over Pusher protocol v7 (no echo in Pusher); app "pusher".
PUSHER_JOBS = [("connect", "pusher"), ("fanout", "pusher"), ("hold", "pusher")]


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


# figure name -> (extractor, lower_is_better, format)
Figure = tuple[str, Callable[[dict[str, Any]], Any], bool, str]
FIGURES: dict[str, list[Figure]] = {
    "connect": [
        ("server us/conn", lambda r: _get(r, "server", "cpu_us_per_connection"), True, "{:.0f}"),
        ("conn/s measured", lambda r: r.get("connections_per_s"), False, "{:,.0f}"),
        (
            "handshake p50 ms",
            lambda r: _get(r, "latency_ms", "handshake_ms", "p50"),
            True,
            "{:.2f}",
        ),
        (
            "handshake p99 ms",
            lambda r: _get(r, "latency_ms", "handshake_ms", "p99"),
            True,
            "{:.2f}",
        ),
        ("auth p50 ms", lambda r: _get(r, "latency_ms", "auth_ms", "p50"), True, "{:.2f}"),
        ("auth p99 ms", lambda r: _get(r, "latency_ms", "auth_ms", "p99"), True, "{:.2f}"),
        ("failures", lambda r: sum(r["failures"].values()), True, "{:.0f}"),
    ],
    "echo": [
        ("server us/msg", lambda r: _get(r, "server", "cpu_us_per_message"), True, "{:.2f}"),
        ("msg/s measured", lambda r: r.get("messages_per_s"), False, "{:,.0f}"),
        ("rtt p50 ms", lambda r: _get(r, "latency_ms", "rtt_ms", "p50"), True, "{:.3f}"),
        ("rtt p99 ms", lambda r: _get(r, "latency_ms", "rtt_ms", "p99"), True, "{:.3f}"),
        ("failures", lambda r: sum(r["failures"].values()), True, "{:.0f}"),
    ],
    "fanout": [
        ("server us/delivery", lambda r: _get(r, "server", "cpu_us_per_delivery"), True, "{:.2f}"),
        ("deliveries/s measured", lambda r: r.get("deliveries_per_s"), False, "{:,.0f}"),
        ("delivery p50 ms", lambda r: _get(r, "latency_ms", "delivery_ms", "p50"), True, "{:.2f}"),
        ("delivery p99 ms", lambda r: _get(r, "latency_ms", "delivery_ms", "p99"), True, "{:.2f}"),
        ("lost deliveries", lambda r: r["expected_deliveries"] - r["deliveries"], True, "{:.0f}"),
    ],
    "hold": [
        (
            "RSS KiB/conn",
            lambda r: (_get(r, "server_rss", "per_connection") or 0) / 1024,
            True,
            "{:.2f}",
        ),
        ("held", lambda r: r.get("held"), False, "{:,.0f}"),
        (
            "server us/conn (ramp)",
            lambda r: _get(r, "server", "cpu_us_per_connection"),
            True,
            "{:.0f}",
        ),
        ("auth p99 ms", lambda r: _get(r, "latency_ms", "auth_ms", "p99"), True, "{:.2f}"),
    ],
}


def median_figures(scenario: str, runs: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, fn, _lower, _fmt in FIGURES[scenario]:
        vals = []
        for r in runs:
            try:
                v = fn(r)
            except (KeyError, TypeError):
                v = None
            if v is not None:
                vals.append(float(v))
        out[name] = statistics.median(vals) if vals else None
    return out


_SHORT = {"server-bound": "server", "generator-bound": "generator", "host-busy": "host-busy"}


def bound_summary(runs: list[dict[str, Any]]) -> str:
    """Which side limited the runs, e.g. ``server`` or ``server 2, generator 1`` (+ kind)."""
    sides: dict[str, int] = {}
    kinds = set()
    for r in runs:
        side = _get(r, "bottleneck", "side") or "unknown"
        sides[side] = sides.get(side, 0) + 1
        kinds.add(_get(r, "generator", "kind") or "python")
    if not sides:
        return "-"
    parts = [
        _SHORT.get(s, s) + (f" {n}" if len(sides) > 1 else "")
        for s, n in sorted(sides.items(), key=lambda kv: -kv[1])
    ]
    return ", ".join(parts) + f" ({'/'.join(sorted(kinds))} gen)"


def _safe(fn: Callable[[dict[str, Any]], Any], run: dict[str, Any]) -> float | None:
    try:
        v = fn(run)
    except (KeyError, TypeError):
        return None
    return None if v is None else float(v)


def _fmt(v: float | None, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def tables(data: dict[str, Any], ref: str | None, key: str = "servers") -> str:
    lines: list[str] = []
    servers = [s for s in data[key] if "scenarios" in data[key][s]]
    for scenario, _app in JOBS if key == "servers" else PUSHER_JOBS:
        figs = FIGURES[scenario]
        lines.append(f"\n### {scenario}\n")
        lines.append("| server | " + " | ".join(f[0] for f in figs) + " | bound by |")
        lines.append("|---|" + "---|" * (len(figs) + 1))
        refmed = _get(data[key].get(ref or "", {}), "scenarios", scenario, "median") or {}
        for s in servers:
            sc = data[key][s]["scenarios"].get(scenario, {})
            med = sc.get("median")
            if med is None:
                lines.append(f"| {s} | failed: {sc.get('error', '?')[:80]} |")
                continue
            cells = []
            for j, (name, fn, _lower, fmt) in enumerate(figs):
                v = med.get(name)
                cell = _fmt(v, fmt)
                r = refmed.get(name)
                if ref and s != ref and v is not None and r and name != "failures":
                    cell += f" ({v / r:.2f}x)"
                if j == 0 and v:
                    # Run-to-run spread of the headline figure: how far to trust a ratio.
                    vals = [x for x in (_safe(fn, run) for run in sc.get("runs", [])) if x]
                    if len(vals) > 1:
                        cell += f" ±{(max(vals) - min(vals)) / 2 / v * 100:.0f}%"
                cells.append(cell)
            mark = ("*" if sc.get("generator_bound_runs") else "") + (
                "!" if sc.get("host_busy_runs") else ""
            )
            cells.append(sc.get("bound") or bound_summary(sc.get("runs", [])))
            lines.append(f"| {s}{' ' + mark if mark else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The targets of issue 10, checked in every comparison for uvgate and its pure-Python twin:
# (scenario, figure, what, limit as a ratio to the raw probe, peers it must beat).
TARGETS = [
    ("connect", "server us/conn", "connections", 1.18, ("socketify",)),
    (
        "echo",
        "server us/msg",
        "echo",
        None,
        ("raw", "picows", "socketify", "websockets", "aiohttp", "node"),
    ),
    ("fanout", "server us/delivery", "fan-out", 1.0, ("picows",)),
]
RSS_TARGET_KIB = 2.0  # per idle authenticated connection (hold)


def yardstick(data: dict[str, Any], key: str = "servers") -> list[str]:
    srv = data[key]
    r = _get(srv, "raw", "scenarios")
    out = []
    for name in ("uvgate", "uvgate-py"):
        u = _get(srv, name, "scenarios")
        if not u:
            continue
        for scenario, fig, what, limit, peers in TARGETS:
            mine = _get(u, scenario, "median", fig)
            if not mine:
                out.append(f"{name} {what}: not measured")
                continue
            parts, ok = [], True
            probe = _get(r, scenario, "median", fig) if r else None
            if probe:
                ratio = mine / probe
                if limit is not None:
                    ok = ok and ratio <= limit
                    parts.append(f"{ratio:.2f}x the raw probe's CPU (target <= {limit:.2f}x)")
                else:
                    parts.append(f"{ratio:.2f}x the raw probe's CPU")
            for peer in peers:
                theirs = _get(srv, peer, "scenarios", scenario, "median", fig)
                if theirs:
                    ok = ok and mine < theirs
                    parts.append(
                        f"{'below' if mine < theirs else 'NOT below'} {peer} ({theirs:.2f})"
                    )
            verdict = "PASS" if ok else "FAIL"
            out.append(f"{name} {what}: {mine:.2f} us; {'; '.join(parts)}: **{verdict}**")
        rss = _get(u, "hold", "median", "RSS KiB/conn")
        if rss:
            verdict = "PASS" if rss <= RSS_TARGET_KIB else "FAIL"
            out.append(
                f"{name} memory: {rss:.2f} KiB RSS per idle authenticated connection "
                f"(target <= {RSS_TARGET_KIB}): **{verdict}**"
            )
    return out or ["uvgate was not measured: no yardstick check."]


def plot_compare(data: dict[str, Any], outdir: str, tag: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .stats import cdf_points

    paths: list[str] = []
    servers = [s for s in data["servers"] if "scenarios" in data["servers"][s]]
    if not servers:
        return paths
    panels = [
        ("connect", "server us/conn"),
        ("echo", "server us/msg"),
        ("fanout", "server us/delivery"),
        ("hold", "RSS KiB/conn"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (scenario, fig_name) in zip(axes, panels, strict=True):
        vals = [
            _get(data["servers"][s], "scenarios", scenario, "median", fig_name) or 0
            for s in servers
        ]
        ax.bar(servers, vals, color="tab:blue")
        ax.set_title(f"{scenario}: {fig_name} (lower is better)", fontsize=9)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.suptitle("server cost per unit (server pinned to one core)")
    p = os.path.join(outdir, f"{tag}-cost-per-unit.png")
    fig.savefig(p, dpi=90, bbox_inches="tight")
    plt.close(fig)
    paths.append(p)
    for scenario, metric in (("connect", "auth_ms"), ("echo", "rtt_ms"), ("fanout", "delivery_ms")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for s in servers:
            raw = _get(data["servers"][s], "scenarios", scenario, "_raw", metric)
            if raw:
                xs, ys = cdf_points(raw)
                ax.plot(xs, ys, label=s)
        ax.set_xscale("log")
        ax.set_xlabel(f"{metric.removesuffix('_ms')} latency (ms, log)")
        ax.set_ylabel("fraction")
        ax.set_title(f"{scenario}: {metric.removesuffix('_ms')} latency CDF (last run)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        p = os.path.join(outdir, f"{tag}-{scenario}-latency-cdf.png")
        fig.savefig(p, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in servers:
        tl = _get(data["servers"][s], "scenarios", "hold", "_timeline")
        if tl:
            ax.plot(
                [pt["t"] for pt in tl], [pt.get("server_rss", 0) / 1048576 for pt in tl], label=s
            )
    ax.set_xlabel("time since go (s)")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("hold: server RSS during ramp and hold (last run)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    p = os.path.join(outdir, f"{tag}-hold-rss.png")
    fig.savefig(p, dpi=90, bbox_inches="tight")
    plt.close(fig)
    paths.append(p)
    return paths


def results_markdown(data: dict[str, Any], charts: list[str], ref: str | None) -> str:
    m = data["machine"]
    lines = [
        "# uvgate benchmark results",
        "",
        f"- command: `{data['command']}`",
        f"- date: {m['date_utc']}",
        f"- machine: {m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, "
        f"Python {m['python']}, node {m['node'] or '-'}; load average at start "
        f"{m.get('loadavg_at_start', '?')} (the machine may be shared: see the `!` marks)",
        f"- method: each server pinned to CPU {SERVER_CPU}, the generator (uvgate-bench: "
        f"{_generator_text(data)}) to CPU {GEN_CPU}; every figure is the median of "
        f"{data['runs']} run(s), the runs of the servers interleaved (run 1 of each, then run 2...) "
        "so a drifting background load is shared; loopback only. Job sizes: "
        + "; ".join(f"{k} {v}" for k, v in data["params"].items()),
        "- read the **server CPU per unit** columns (us of server CPU per connection, message or "
        "delivery = the inverse of its capacity per core); the measured rates are the server's "
        "capacity only where the run was server-bound. `bound by` says which side limited "
        "each run (from the CPU both sides used, irq/softirq of their pinned CPUs included: "
        "bench/bottleneck.py), with the generator used. "
        "`*` marks a server where at least one run was generator-bound, `!` one where other "
        "processes on the host took more than a quarter core during a run (rates disturbed).",
        f"- ratios in parentheses are to {ref or '-'} (value / {ref or '-'}); ±N% after the "
        "first figure is half the run-to-run range (max - min) of the runs, relative to the median.",
    ]
    if data["skipped"]:
        lines.append(
            "- not measured: " + "; ".join(f"{k}: {v}" for k, v in data["skipped"].items())
        )
    lines.append(tables(data, ref))
    lines.append("\n## Yardstick (uvgate vs the raw uvloop probe)\n")
    lines.extend(f"- {y}" for y in yardstick(data))
    # Measured apart and kept under results/: the deterministic cost of the hot path
    # (bench/callgrind.py) and the syscalls per connection next to the probe's.
    for title, name in (
        ("The compiled hot path: what it bought, what is left", "hotpath.md"),
        ("Hot path: instructions per unit (`python -m bench.callgrind`)", "callgrind.md"),
        ("Syscalls per connection (`strace -c -f`, native generator)", "syscalls.md"),
    ):
        path = os.path.join(BENCH_DIR, "results", name)
        if os.path.exists(path):
            lines.append(f"\n## {title}\n")
            with open(path) as f:
                lines.append(f.read().rstrip())
    if data.get("pusher"):
        lines.append(
            "\n## Pusher protocol v7 (`--pusher`: uvgate's /app/{key} vs raw_probe --app pusher)\n"
        )
        lines.append(
            "Connect = connection_established + private-channel subscribe (signed by the "
            "generator) + subscription_succeeded; fanout triggers through the signed HTTP API."
        )
        lines.append(tables(data, "uvgate" if "uvgate" in data["pusher"] else "raw", "pusher"))
        lines.extend(f"- {y}" for y in yardstick(data, "pusher"))
    lines.append("\n## Charts\n")
    for c in charts:
        rel = os.path.relpath(c, BENCH_DIR)
        lines.append(f"![{os.path.basename(c)}]({rel})")
    # Every held-connections run kept under results/ (hold100k.json from `hold100k`,
    # hold<N>.json for larger runs copied there by hand), smallest first.
    import glob
    import json

    holds = []
    for path in glob.glob(os.path.join(BENCH_DIR, "results", "hold*.json")):
        with open(path) as f:
            holds.append((path, json.load(f)))
    holds.sort(key=lambda item: item[1].get("target_connections", 0))
    if holds:
        lines.append("\n## Connections held against uvgate (`python -m bench hold100k`)\n")
    for path, hk in holds:
        rss = hk.get("server_rss") or {}
        per = rss.get("per_connection")
        srv = hk.get("server") or {}
        failures = hk.get("failures") or {}
        name = os.path.splitext(os.path.basename(path))[0]
        lines.append(
            f"- {hk['started_at']}: {hk['label']}, {hk['generator']['procs']} generator processes "
            f"on both cores, {len(hk['config']['sources'])} source addresses: held "
            f"**{hk['held']:,} / {hk['target_connections']:,}**, ramp {hk['ramp_s']:.0f} s, "
            f"server RSS {rss.get('baseline', 0) / 1048576:.0f} -> "
            f"{rss.get('after_hold', 0) / 1048576:.0f} MiB "
            + (f"(**{per / 1024:.2f} KiB per connection**)" if per else "")
            + (
                f", {srv['cpu_us_per_connection']:.0f} us server CPU per connection during the ramp"
                if srv.get("cpu_us_per_connection")
                else ""
            )
            + (f", failures {failures}" if failures else "")
            + f". Details: results/{name}.md, results/{name}.json."
        )
    return "\n".join(lines) + "\n"


def _generator_text(data: dict[str, Any]) -> str:
    kinds: set[str] = set()
    for key in ("servers", "pusher"):
        for srv in (data.get(key) or {}).values():
            for sc in srv.get("scenarios", {}).values():
                for r in sc.get("runs", []):
                    kind = _get(r, "generator", "kind") or "python"
                    busy = kind == "native" and bool(_get(r, "config", "busy_poll"))
                    kinds.add("native-busy" if busy else kind)
    text = {
        "native": "the native epoll client of bench/native, one process",
        "native-busy": "the native epoll client of bench/native, one process, busy-polling "
        "(it never sleeps, so no server pays for waking it; its idle polling is not counted "
        "as its load)",
        "python": "the Python client on uvloop, hand-rolled framing",
    }
    return "; ".join(text.get(k, k) for k in sorted(kinds)) or "-"
