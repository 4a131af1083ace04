"""Deterministic per-unit cost of the hot path: instructions counted by callgrind.

Wall-clock micro benchmarks move by 10-20% on a shared machine; instruction counts do
not. Each figure is measured by difference: the same workload runs twice under
``valgrind --tool=callgrind`` with two unit counts, and

    instructions per unit = (Ir(long run) - Ir(short run)) / (long units - short units)

so interpreter start-up, imports and set-up cancel out. ``PYTHONHASHSEED`` is fixed, so
dict and set layouts repeat from run to run; what is left (ids drawn from the OS CSPRNG,
addresses) moves the figure by well under 1% at the default run lengths.

Units (both through a fake transport, as ``bench.micro_gateway`` does, so no syscall and
no event loop is counted; ``python -m bench compare`` measures those end to end):

* ``connection``: TCP accept callback, upgrade request, 101, HMAC token auth message,
  auth ack, client close frame, close frame back, connection lost;
* ``message``: one 32-byte masked text frame in, echoed back.

Targets: ``uvgate`` (``gateway.connection.Connection`` behind a real ``Gateway``) and
``probe`` (``bench/peers/raw_probe.py``, the lean yardstick, doing the same job).
``--form`` picks the compiled hot path or the pure-Python twin (``UVGATE_PURE_PYTHON=1``)
for uvgate; the probe is pure Python either way.

    python -m bench.callgrind                         # both targets, both units
    python -m bench.callgrind --target uvgate --unit connection --functions 25
    python -m bench.callgrind --form pure --form compiled
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGETS = ("uvgate", "probe")
UNITS = ("connection", "message")
FORMS = ("compiled", "pure")
# Short and long run lengths per unit: long enough that the difference dwarfs the noise
# (a few thousand instructions per run), short enough for valgrind (~50x slower).
RUNS = {"connection": (500, 2500), "message": (5000, 25000)}
HASH_SEED = "0"


# ------------------------------------------------------------------ the workload
def workload(target: str, unit: str, count: int) -> None:
    """Run ``count`` units of ``unit`` against ``target`` (this process, no valgrind)."""
    import asyncio
    import gc

    from bench.micro_gateway import REQUEST, SECRET, FakeTransport
    from gateway.tokens import issue_token
    from protocol.frames import OP_CLOSE, OP_TEXT, encode_client_frame

    auth = encode_client_frame(
        OP_TEXT,
        b'{"type":"auth","token":"' + issue_token(SECRET, "u", 3600).encode() + b'"}',
        mask=b"\x01\x02\x03\x04",
    )
    close = encode_client_frame(OP_CLOSE, b"\x03\xe8", mask=b"\x05\x06\x07\x08")
    msg = encode_client_frame(OP_TEXT, b"x" * 32, mask=b"\x09\x0a\x0b\x0c")

    async def run() -> None:
        make: Any
        if target == "uvgate":
            from gateway.config import Config
            from gateway.connection import Connection
            from gateway.server import Gateway

            gw = Gateway(Config(secret=SECRET, node_id=1, pusher=False))
            gw.state.accepting = True
            gw.timers.now = asyncio.get_running_loop().time()

            def make() -> Any:
                return Connection(gw.ctx, gw.router)

        else:
            sys.path.insert(0, str(Path(__file__).parent / "peers"))
            from raw_probe import Probe

            key = SECRET.encode()

            def make() -> Any:
                return Probe(key, False)

        # Start-up objects out of the collector's sight: a full collection then costs
        # the same in both runs whatever the import graph, so it cancels like the rest.
        gc.collect()
        gc.freeze()
        if unit == "connection":
            for _ in range(count):
                conn = make()
                conn.connection_made(FakeTransport())
                conn.data_received(REQUEST)
                conn.data_received(auth)
                conn.data_received(close)
                conn.connection_lost(None)
        else:
            conn = make()
            conn.connection_made(FakeTransport())
            conn.data_received(REQUEST)
            conn.data_received(auth)
            receive = conn.data_received
            gc.collect()
            gc.freeze()
            for _ in range(count):
                receive(msg)

    asyncio.run(run())


# ------------------------------------------------------------------ measuring
@dataclass(frozen=True)
class Figure:
    target: str
    unit: str
    form: str
    per_unit: float  # instructions per unit
    functions: list[tuple[float, str]]  # (instructions per unit, function), self cost


_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _callgrind(target: str, unit: str, form: str, count: int, out: Path) -> int:
    env = dict(os.environ, PYTHONHASHSEED=HASH_SEED)
    env.pop("UVGATE_PURE_PYTHON", None)
    if form == "pure":
        env["UVGATE_PURE_PYTHON"] = "1"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--quiet",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.callgrind",
        "--child",
        target,
        unit,
        str(count),
    ]
    subprocess.run(cmd, env=env, check=True, cwd=Path(__file__).resolve().parent.parent)
    match = _TOTALS.search(out.read_bytes())
    if match is None:
        raise RuntimeError(f"no totals in {out}")
    return int(match.group(1))


_ANNOTATED = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+?)\s*$")


def _self_costs(out: Path) -> dict[str, int]:
    """Self instructions per function (callgrind_annotate), keyed by 'file:function'."""
    text = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", str(out)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    costs: dict[str, int] = {}
    for line in text.splitlines():
        match = _ANNOTATED.match(line)
        if match is None:
            continue
        # "path/file.c:function [object]" -> "file.c:function"
        name = match.group(2).split(" [", 1)[0]
        where, _, function = name.rpartition(":")
        name = f"{os.path.basename(where)}:{function}" if where else function
        costs[name] = costs.get(name, 0) + int(match.group(1).replace(",", ""))
    return costs


def measure(target: str, unit: str, form: str, *, functions: int = 0) -> Figure:
    short, long = RUNS[unit]
    with tempfile.TemporaryDirectory(prefix="uvgate-callgrind-") as tmp:
        a, b = Path(tmp, "short.out"), Path(tmp, "long.out")
        ir_short = _callgrind(target, unit, form, short, a)
        ir_long = _callgrind(target, unit, form, long, b)
        per_unit = (ir_long - ir_short) / (long - short)
        top: list[tuple[float, str]] = []
        if functions:
            before, after = _self_costs(a), _self_costs(b)
            diffs = [
                ((after.get(name, 0) - before.get(name, 0)) / (long - short), name)
                for name in after.keys() | before.keys()
                if "PROGRAM TOTALS" not in name
            ]
            top = sorted(diffs, reverse=True)[:functions]
    return Figure(target, unit, form, per_unit, top)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.callgrind",
        description="Instructions per connection and per echoed message (valgrind callgrind).",
    )
    ap.add_argument("--target", action="append", choices=TARGETS, help="default: both")
    ap.add_argument("--unit", action="append", choices=UNITS, help="default: both")
    ap.add_argument(
        "--form",
        action="append",
        choices=FORMS,
        help="uvgate's hot path: compiled, pure (UVGATE_PURE_PYTHON=1); default: compiled",
    )
    ap.add_argument(
        "--functions", type=int, default=0, metavar="N", help="also the N costliest functions"
    )
    ap.add_argument(
        "--out", metavar="FILE", help="also write the figures as markdown (bench/results/...)"
    )
    ap.add_argument("--child", nargs=3, metavar=("TARGET", "UNIT", "COUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        target, unit, count = args.child
        workload(target, unit, int(count))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    forms = args.form or ["compiled"]
    figures: list[Figure] = []
    for target in args.target or TARGETS:
        for unit in args.unit or UNITS:
            for form in forms if target == "uvgate" else ["-"]:
                fig = measure(
                    target, unit, "pure" if form == "-" else form, functions=args.functions
                )
                figures.append(fig)
                print(f"{_label(fig):<20} {unit:<11} {fig.per_unit:>12,.0f} instructions/{unit}")
                for cost, name in fig.functions:
                    print(f"    {cost:>10,.0f}  {name}")
                sys.stdout.flush()
    if args.out:
        command = "python -m bench.callgrind " + " ".join(sys.argv[1:])
        Path(args.out).write_text(markdown(figures, command))
    return 0


def _label(fig: Figure) -> str:
    return fig.target if fig.target == "probe" else f"{fig.target} ({fig.form})"


def markdown(figures: list[Figure], command: str) -> str:
    """The figures as a section of bench/RESULTS.md (included by ``bench compare``)."""
    import platform
    import time

    probe = {f.unit: f.per_unit for f in figures if f.target == "probe"}
    lines = [
        f"- command: `{command}` (valgrind callgrind, PYTHONHASHSEED={HASH_SEED}, "
        f"runs of {RUNS['connection']} and {RUNS['message']} units, by difference)",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python "
        f"{platform.python_version()}; fake transport (no syscalls, no event loop)",
        "",
        "| target | unit | instructions per unit | vs the probe |",
        "|---|---|---|---|",
    ]
    for fig in figures:
        ratio = f"{fig.per_unit / probe[fig.unit]:.2f}x" if probe.get(fig.unit) else "-"
        lines.append(f"| {_label(fig)} | {fig.unit} | {fig.per_unit:,.0f} | {ratio} |")
    for fig in figures:
        if fig.functions:
            lines += ["", f"Costliest functions (self), {_label(fig)}, per {fig.unit}:", ""]
            lines += [f"    {cost:>10,.0f}  {name}" for cost, name in fig.functions]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
