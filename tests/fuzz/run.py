"""Run the fuzz targets under atheris (libFuzzer), bounded in time: ``make fuzz``.

    python -m tests.fuzz.run [--seconds 60] [TARGET ...]   # default: every target
    python -m tests.fuzz.run --merge-only [TARGET ...]      # just minimize the corpora

Per target, a child process fuzzes for ``--seconds`` starting from
``corpus/<target>/`` (new inputs go to a scratch directory, so a run does not flood the
repository), and writes any crash, timeout or out-of-memory input to
``crashes/<target>/`` (libFuzzer ``-artifact_prefix``). Then ``-merge=1`` rebuilds the
corpus as the smallest set of files that keeps the coverage of the old corpus plus the
new inputs, so it stays at a few hundred small files. Exit status 1 if any target found
something; the summary prints executions and findings per target.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .targets import CORPUS_DIR, CRASHES_DIR, TARGETS, load

MAX_LEN = 4096  # bytes per input: every parser's interesting shapes fit, files stay small
PER_INPUT_TIMEOUT = 10  # seconds: a slower input is a finding (libFuzzer "timeout-")
RSS_LIMIT_MB = 2048
_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


@dataclass(slots=True)
class Outcome:
    target: str
    execs: int
    seconds: float
    corpus: int
    findings: list[str]
    status: int


def _child(name: str, args: Sequence[str]) -> None:
    """Inside the child: instrument protocol/ and hand the target to libFuzzer."""
    import atheris  # only ``make fuzz`` installs it (the ``fuzz`` extra)

    with atheris.instrument_imports(include=["protocol"]):
        check = load(name)
    # libFuzzer re-runs argv[0] for -merge: it must be the executable wrapper.
    argv0 = os.environ.get("UVGATE_FUZZ_ARGV0", sys.argv[0])
    atheris.Setup([argv0, *args], check)
    atheris.Fuzz()


def _wrapper(name: str, folder: Path) -> Path:
    """An executable that runs the child for ``name``: what libFuzzer re-executes."""
    path = folder / f"fuzz-{name}"
    path.write_text(
        "#!/bin/sh\n"
        f'cd "{Path.cwd()}" && exec "{sys.executable}" -m tests.fuzz.run --child {name} -- "$@"\n'
    )
    path.chmod(0o755)
    return path


def _libfuzzer(name: str, args: list[str], log: Path, timeout: float) -> int:
    wrapper = _wrapper(name, log.parent)
    env = {**os.environ, "UVGATE_FUZZ_ARGV0": str(wrapper)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(wrapper), *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return -9


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _merge(name: str, extra: list[Path], scratch: Path) -> int:
    """Rebuild corpus/<name> as the minimal set covering itself and ``extra``."""
    corpus = CORPUS_DIR / name
    merged = scratch / "merged"
    merged.mkdir()
    log = scratch / "merge.log"
    args = ["-merge=1", f"-max_len={MAX_LEN}", str(merged), str(corpus), *map(str, extra)]
    status = _libfuzzer(name, args, log, timeout=600)
    if status != 0 or not any(merged.iterdir()):
        print(f"  {name}: merge failed (exit {status}), corpus unchanged; see {log}")
        return len(_files(corpus))
    for old in corpus.iterdir():
        old.unlink()
    for new in merged.iterdir():
        shutil.move(str(new), corpus / new.name)
    return len(_files(corpus))


def fuzz(name: str, seconds: int, *, merge: bool) -> Outcome:
    corpus = CORPUS_DIR / name
    crashes = CRASHES_DIR / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = _files(crashes)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        scratch = Path(tmp)
        new_inputs = scratch / "new"
        new_inputs.mkdir()
        log = scratch / "fuzz.log"
        args = [
            str(new_inputs),  # the first directory receives new inputs
            str(corpus),
            f"-max_total_time={seconds}",
            f"-max_len={MAX_LEN}",
            f"-timeout={PER_INPUT_TIMEOUT}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={crashes}/",
            "-print_final_stats=1",
        ]
        started = time.monotonic()
        status = _libfuzzer(name, args, log, timeout=seconds + 300)
        elapsed = time.monotonic() - started
        text = log.read_text(errors="replace")
        found = sorted(_files(crashes) - before)
        execs = _EXECS.search(text) or _DONE.search(text)
        if status != 0 or found:
            tail = "\n".join(text.strip().splitlines()[-40:])
            print(f"--- {name}: exit {status}, last lines of the libFuzzer log ---\n{tail}\n---")
        size = _merge(name, [new_inputs], scratch) if merge else len(_files(corpus))
    return Outcome(name, int(execs.group(1)) if execs else 0, elapsed, size, found, status)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        name, rest = argv[1], argv[2:]
        _child(name, rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument(
        "--seconds",
        type=int,
        default=int(os.environ.get("FUZZ_SECONDS", "60")),
        help="fuzzing time per target (default 60, or $FUZZ_SECONDS)",
    )
    parser.add_argument("--no-merge", action="store_true", help="keep the corpora as they are")
    parser.add_argument("--merge-only", action="store_true", help="only minimize the corpora")
    args = parser.parse_args(argv)
    names = args.targets or list(TARGETS)
    for name in names:
        load(name)  # unknown names fail before anything runs
    if args.merge_only:
        for name in names:
            with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
                print(f"{name}: {_merge(name, [], Path(tmp))} corpus files")
        return 0
    outcomes = []
    for name in names:
        print(f"{name}: fuzzing for {args.seconds} s ...", flush=True)
        outcome = fuzz(name, args.seconds, merge=not args.no_merge)
        outcomes.append(outcome)
        print(
            f"{name}: {outcome.execs:,} executions in {outcome.seconds:.0f} s, "
            f"corpus {outcome.corpus} files, findings: {', '.join(outcome.findings) or 'none'}",
            flush=True,
        )
    print(f"\n{'target':<16}{'executions':>12}{'exec/s':>9}{'corpus':>8}  findings")
    for o in outcomes:
        rate = o.execs / o.seconds if o.seconds else 0.0
        found = ", ".join(o.findings) or ("none" if o.status == 0 else f"exit {o.status}")
        print(f"{o.target:<16}{o.execs:>12,}{rate:>9,.0f}{o.corpus:>8}  {found}")
    print(f"total executions: {sum(o.execs for o in outcomes):,}; crashes: {CRASHES_DIR}/<target>/")
    return 1 if any(o.findings or o.status != 0 for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
