"""Markdown summary, JSON file and PNG charts of one run."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

from .stats import cdf_points


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 1048576:.1f} MiB"


def markdown(res: dict[str, Any]) -> str:
    sc = res["scenario"]
    lines = [
        f"### {sc} ({res['protocol']}) -> {res['target']}"
        + (f" [{res['label']}]" if res["label"] else ""),
        "",
        "| figure | value |",
        "|---|---|",
    ]

    def row(k: str, v: Any) -> None:
        lines.append(f"| {k} | {v} |")

    row("wall (measured window)", f"{res['wall_s']:.2f} s")
    if sc == "connect":
        row("connections ok", _f(res["ok"]))
        row("connections/s", _f(res["connections_per_s"], 1))
    elif sc == "echo":
        row("connections", _f(res["connections"]))
        row("messages (window)", _f(res["messages"]))
        row("messages/s", _f(res["messages_per_s"], 1))
    elif sc == "fanout":
        row("subscribers", _f(res["subscribers"]))
        row("published", _f(res["published"]))
        row("deliveries / expected", f"{_f(res['deliveries'])} / {_f(res['expected_deliveries'])}")
        row("deliveries/s", _f(res["deliveries_per_s"], 1))
    elif sc == "hold":
        row("held / target", f"{_f(res['held'])} / {_f(res['target_connections'])}")
        row("ramp", f"{res['ramp_s']:.2f} s ({_f(res['ramp_rate'], 1)} conn/s)")
        rss = res.get("server_rss")
        if rss:
            row(
                "server RSS baseline -> after hold",
                f"{_mib(rss['baseline'])} -> {_mib(rss['after_hold'])}",
            )
            per = rss["per_connection"]
            row("server RSS per connection", "-" if per is None else f"{per / 1024:.2f} KiB")
    for name, s in res["latency_ms"].items():
        if s.get("n"):
            row(
                f"{name.removesuffix('_ms')} latency ms p50/p90/p99/max",
                f"{_f(s['p50'], 3)} / {_f(s['p90'], 3)} / {_f(s['p99'], 3)} / {_f(s['max'], 3)}",
            )
    unit = res["unit"]
    srv = res.get("server")
    if srv:
        row("server CPU", f"{srv['cpu_s']:.2f} s ({srv['util_cores'] * 100:.0f}% of a core)")
        row(f"server CPU per {unit}", f"{_f(srv.get(f'cpu_us_per_{unit}'), 2)} us")
    gen = res["generator"]
    row(
        "generator CPU",
        f"{gen['cpu_s']:.2f} s ({gen['util_cores'] * 100:.0f}% of a core, {gen['procs']} "
        f"{gen.get('kind', 'python')} procs)",
    )
    row(f"generator CPU per {unit}", f"{_f(gen.get(f'cpu_us_per_{unit}'), 2)} us")
    verdict = res.get("bottleneck")
    if verdict:
        row("bottleneck", f"**{verdict['side']}** ({verdict['reason']})")
    host = res.get("host")
    if host:
        row(
            "host CPU busy (other processes)",
            f"{host['busy_cores']:.2f} of {host['cores']} cores ({host['others_cores']:.2f})",
        )
    if res["failures"]:
        row("failures", ", ".join(f"{k}={v}" for k, v in sorted(res["failures"].items())))
    for n in res["notes"]:
        lines.append(f"\nnote: {n}")
    for w in res["warnings"]:
        lines.append(f"\n**WARNING: {w}**")
    return "\n".join(lines) + "\n"


def public(res: dict[str, Any]) -> dict[str, Any]:
    """The result without raw samples (what goes into JSON files)."""
    return {k: v for k, v in res.items() if not k.startswith("_")}


def write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False, default=str)
        f.write("\n")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(res: dict[str, Any], outdir: str, prefix: str = "") -> list[str]:
    """Latency CDF, connection ramp and throughput over time; returns the PNG paths."""
    plt = _plt()
    os.makedirs(outdir, exist_ok=True)
    base = prefix or f"{res['scenario']}-{res['protocol']}"
    paths: list[str] = []
    raw = res.get("_raw_latency_ms", {})
    if any(raw.values()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, values in raw.items():
            if values:
                xs, ys = cdf_points(values)
                ax.plot(xs, ys, label=name.removesuffix("_ms"))
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction")
        ax.set_title(f"{res['scenario']} latency CDF - {res['target']}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        p = os.path.join(outdir, f"{base}-latency-cdf.png")
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)
    tl = res.get("timeline") or []
    if len(tl) >= 2:
        ts = [pt["t"] for pt in tl]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(ts, [pt["alive"] for pt in tl], label="open connections")
        ax.plot(ts, [pt["ok"] for pt in tl], label="authenticated (cumulative)", alpha=0.6)
        if any(pt["fail"] for pt in tl):
            ax.plot(ts, [pt["fail"] for pt in tl], label="failures (cumulative)")
        ax.set_xlabel("time since go (s)")
        ax.set_ylabel("connections")
        ax.set_title(f"{res['scenario']} connection ramp - {res['target']}")
        ax.grid(True, alpha=0.3)
        if "server_rss" in tl[0]:
            ax2 = ax.twinx()
            ax2.plot(ts, [pt["server_rss"] / 1048576 for pt in tl], "k--", label="server RSS (MiB)")
            ax2.set_ylabel("server RSS (MiB)")
            ax2.legend(loc="lower right")
        ax.legend(loc="upper left")
        p = os.path.join(outdir, f"{base}-ramp.png")
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)
        key = {"connect": "ok", "hold": "ok", "echo": "msgs", "fanout": "deliv"}[res["scenario"]]
        rates_t, rates = [], []
        for a, b in itertools.pairwise(tl):
            dt = b["t"] - a["t"]
            if dt > 0:
                rates_t.append(b["t"])
                rates.append((b[key] - a[key]) / dt)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(rates_t, rates)
        label = {"ok": "connections/s", "msgs": "messages/s", "deliv": "deliveries/s"}[key]
        ax.set_xlabel("time since go (s)")
        ax.set_ylabel(label)
        ax.set_title(f"{res['scenario']} throughput - {res['target']}")
        ax.grid(True, alpha=0.3)
        p = os.path.join(outdir, f"{base}-throughput.png")
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)
    return paths
