"""Run the Autobahn|Testsuite cases against ``uvgate serve --verifier none --app echo``.

    python -m tests.conformance.run                  # both passes (what `make conformance` runs)
    python -m tests.conformance.run --no-deflate     # 1.* to 10.* only (~20 s)
    python -m tests.conformance.run --deflate        # --deflate server: 1.*-10.*, 12.*, 13.*
    python -m tests.conformance.run --cases 5.*,6.1.* --no-deflate --out /tmp/ab

Both passes = 1.*-10.* against the plain server, then 12.*/13.* against ``--deflate`` (the
client offers permessage-deflate only in 12.*/13.*, so 1.*-10.* would repeat). 12.*/13.*
echo 216 x 1000 messages of up to 128 KiB through zlib and take most of the time: 536
CPU-seconds in all, 10 min wall on a busy 2-core machine (tests/conformance/RESULTS.md).

The gateway runs as a subprocess on a free port of 127.0.0.1 and is stopped by its pid.
kosoku (PyPI, the Autobahn case files on a Rust runner) drives it, one kosoku process per
case group so a slow group cannot take the others' results with it; each group writes an
Autobahn-style report (``index.json``, per-case JSON and HTML) under ``--out/<pass>/<group>``.

A case fails when its behavior is NON-STRICT, FAILED or ERROR, or its closing behavior is
anything but OK or INFORMATIONAL; OK, INFORMATIONAL (only a case file sets it: 7.1.6,
7.13.*) and UNIMPLEMENTED pass (the last only matters for 12.*/13.* against a server
without permessage-deflate). Exit status: 0 when
every selected case passed, 1 when a case failed, 2 when the run was incomplete (a group
timed out or kosoku could not run it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Autobahn 9.* sends messages of up to 16 MiB; the gateway's default limit is 64 KiB.
MAX_MESSAGE_SIZE = 20_000_000
WS_PATH = "/ws"
# There is no 8.* in the Autobahn suite; 11.* does not exist either.
PLAIN_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*")
# One kosoku run per data set / offer, so progress shows and a timeout loses one group.
DEFLATE_CASES = tuple(f"12.{i}.*" for i in range(1, 6)) + tuple(f"13.{i}.*" for i in range(1, 8))

# NON-STRICT fails too: since 6.4.3/6.4.4 fail fast, every case can be OK.
PASSING = frozenset({"OK", "INFORMATIONAL", "UNIMPLEMENTED"})
PASSING_CLOSE = frozenset({"OK", "INFORMATIONAL"})
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR")

# The 12.*/13.* cases echo 1000 messages each, one at a time, and the gateway and kosoku
# take turns (de)compressing: two cases at once keep both cores busy. Cases 1.*-10.*
# include timing-sensitive ones (fail-fast UTF-8, closing), so they run one by one.
DEFLATE_PARALLELISM = 2

_LISTENING = re.compile(r"listening on wss?://[^\s:]+:(\d+)/")


@dataclass(frozen=True, slots=True)
class CaseResult:
    case_id: str
    behavior: str
    behavior_close: str
    remote_close_code: int | None
    duration_ms: int
    description: str

    @property
    def failed(self) -> bool:
        return self.behavior not in PASSING or self.behavior_close not in PASSING_CLOSE


@dataclass(slots=True)
class PassResult:
    name: str
    deflate: bool
    cases: dict[str, CaseResult] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)  # groups without a full report
    seconds: float = 0.0

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases.values() if c.failed]

    def counts(self) -> Counter[str]:
        return Counter(c.behavior for c in self.cases.values())


def case_key(case_id: str) -> tuple[int, ...]:
    """Numeric order: 1.2.10 after 1.2.9."""
    return tuple(int(p) for p in case_id.split(".") if p.isdigit())


def kosoku_command() -> list[str]:
    """The kosoku console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "kosoku"
    if script.exists():
        return [str(script)]
    found = shutil.which("kosoku")
    if found is None:
        raise SystemExit("kosoku is not installed: pip install -e '.[conformance]'")
    return [found]


@contextmanager
def echo_gateway(
    logfile: Path, *, deflate: bool, max_message_size: int = MAX_MESSAGE_SIZE
) -> Iterator[int]:
    """Serve the echo target on 127.0.0.1:<free port>; yield the port, stop it by pid."""
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--verifier",
        "none",
        "--app",
        "echo",
        "--host",
        "127.0.0.1",
        "--port",
        "0",  # the gateway binds a free port and prints it
        "--max-message-size",
        str(max_message_size),
        "--deflate" if deflate else "--no-deflate",
        "--log-level",
        "warning",
    ]
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield _wait_listening(proc, logfile)
    finally:
        _stop(proc)


def _wait_listening(proc: subprocess.Popen[bytes], logfile: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(logfile.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(
        f"the gateway did not start (exit {proc.poll()}):\n{logfile.read_text(errors='replace')}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL after a bounded wait; this pid only."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _group_dir_name(pattern: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", pattern.lower()).strip("_") or "all"


def run_group(
    port: int,
    pattern: str,
    outdir: Path,
    *,
    exclude: Sequence[str] = (),
    parallelism: int = 1,
    timeout: float,
) -> tuple[dict[str, CaseResult], str | None]:
    """Run one kosoku process on ``pattern``; return the results and an error, if any."""
    cmd = [*kosoku_command(), "-m", "fuzzingclient", "-o", str(outdir), "-p", str(parallelism)]
    cmd += ["-i", pattern]
    for x in exclude:
        cmd += ["-x", x]
    cmd.append(f"ws://127.0.0.1:{port}{WS_PATH}")
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    with open(outdir / "kosoku.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            # kosoku exits 1 when a case failed: the report says which, so not an error.
            proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return {}, f"timed out after {timeout:.0f} s"
    results = load_report(outdir)
    if not results:
        tail = (outdir / "kosoku.log").read_text(errors="replace").strip().splitlines()[-3:]
        return {}, "no report: " + " | ".join(tail)
    return results, None


def load_report(outdir: Path) -> dict[str, CaseResult]:
    """Read an Autobahn-style ``index.json`` (agent -> case id -> entry) and its case files."""
    index_file = outdir / "index.json"
    if not index_file.exists():
        return {}
    index = json.loads(index_file.read_text())
    results: dict[str, CaseResult] = {}
    for entries in index.values():
        for case_id, entry in entries.items():
            description = ""
            report = outdir / entry.get("reportfile", "")
            if report.is_file():
                description = json.loads(report.read_text()).get("description", "")
            results[case_id] = CaseResult(
                case_id,
                entry["behavior"],
                entry["behaviorClose"],
                entry.get("remoteCloseCode"),
                int(entry.get("duration") or 0),
                " ".join(description.split()),
            )
    return results


def default_parallelism(pattern: str) -> int:
    return DEFLATE_PARALLELISM if pattern.startswith(("12.", "13.")) else 1


def run_pass(
    name: str,
    patterns: Sequence[str],
    out: Path,
    *,
    deflate: bool,
    exclude: Sequence[str] = (),
    parallelism: int | None = None,
    deadline: float,
    verbose: bool = True,
) -> PassResult:
    """Start the gateway once, run each pattern as a group, stop the gateway."""
    result = PassResult(name, deflate)
    started = time.monotonic()
    passdir = out / name
    with echo_gateway(passdir / "gateway.log", deflate=deflate) as port:
        for pattern in patterns:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.incomplete.append(f"{pattern}: not run (time budget spent)")
                continue
            t0 = time.monotonic()
            cases, error = run_group(
                port,
                pattern,
                passdir / _group_dir_name(pattern),
                exclude=exclude,
                parallelism=parallelism or default_parallelism(pattern),
                timeout=remaining,
            )
            result.cases.update(cases)
            if error:
                result.incomplete.append(f"{pattern}: {error}")
            if verbose:
                bad = sum(c.failed for c in cases.values())
                note = f"  ({error})" if error else ""
                print(
                    f"  [{name}] {pattern:<8} {len(cases):4d} cases, {bad} failed, "
                    f"{time.monotonic() - t0:6.1f} s{note}",
                    flush=True,
                )
    result.seconds = time.monotonic() - started
    return result


def format_summary(passes: Sequence[PassResult]) -> str:
    lines = []
    header = f"{'pass':<10}{'cases':>7}" + "".join(f"{b:>{len(b) + 2}}" for b in BEHAVIORS)
    header += f"{'time':>8}"
    lines.append(header)
    lines.append("-" * len(header))
    for p in passes:
        counts = p.counts()
        lines.append(
            f"{p.name:<10}{len(p.cases):>7}"
            + "".join(f"{counts.get(b, 0):>{len(b) + 2}}" for b in BEHAVIORS)
            + f"{p.seconds:>7.0f}s"
        )
    for p in passes:
        failed = sorted(p.failed, key=lambda c: case_key(c.case_id))
        if failed:
            lines.append("")
            lines.append(f"FAILED cases ({p.name}):")
            for c in failed:
                lines.append(
                    f"  {c.case_id:<9} behavior={c.behavior} close={c.behavior_close} "
                    f"remote code={c.remote_close_code}: {c.description}"
                )
        for note in p.incomplete:
            lines.append(f"INCOMPLETE ({p.name}) {note}")
    return "\n".join(lines)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.conformance.run",
        description="Autobahn|Testsuite (kosoku) against uvgate --verifier none --app echo.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--deflate",
        action="store_true",
        help="only the pass against a --deflate server (default cases 1.*-10.*, 12.*, 13.*)",
    )
    mode.add_argument(
        "--no-deflate",
        action="store_true",
        help="only the pass against a server without permessage-deflate (default 1.*-10.*)",
    )
    parser.add_argument(
        "--cases",
        type=_split,
        default=None,
        help="comma-separated case ids or globs, one kosoku run each (e.g. 1.*,6.4.*,9.1.1)",
    )
    parser.add_argument(
        "--exclude", type=_split, default=[], help="comma-separated case ids or globs to skip"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "reports" / "conformance",
        help="report directory (default: reports/conformance)",
    )
    parser.add_argument(
        "--parallelism",
        type=int,
        default=None,
        help=f"cases kosoku runs at once (default 1, {DEFLATE_PARALLELISM} for 12.*/13.* groups)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="overall time budget in seconds; groups not finished by then count as incomplete",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    both = not args.deflate and not args.no_deflate
    plan: list[tuple[str, bool, list[str]]] = []
    if args.no_deflate or both:
        plan.append(("plain", False, args.cases or list(PLAIN_CASES)))
    if args.deflate or both:
        # The client offers permessage-deflate in 12.*/13.* only, so with both passes
        # 1.*-10.* would repeat the plain pass exactly: the deflate pass skips them.
        default = list(DEFLATE_CASES) if both else [*PLAIN_CASES, *DEFLATE_CASES]
        plan.append(("deflate", True, args.cases or default))

    deadline = time.monotonic() + args.timeout
    passes = []
    for name, deflate, patterns in plan:
        print(
            f"{name}: uvgate serve --verifier none --app echo --max-message-size "
            f"{MAX_MESSAGE_SIZE}{' --deflate' if deflate else ''}; cases {','.join(patterns)}",
            flush=True,
        )
        passes.append(
            run_pass(
                name,
                patterns,
                args.out,
                deflate=deflate,
                exclude=args.exclude,
                parallelism=args.parallelism,
                deadline=deadline,
            )
        )
    summary = format_summary(passes)
    print()
    print(summary)
    (args.out / "summary.txt").write_text(summary + "\n")
    print(f"\nreports: {args.out}/<pass>/<group>/index.html")
    if any(p.failed for p in passes):
        return 1
    if any(p.incomplete for p in passes):
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
