"""Which side limited a run: the server, the generator, or the rest of the host.

Every result says it (CLI, JSON, the tables of ``compare``), from the CPU both sides used
in the measured window. A side's load is the larger of

- its processes' CPU (schedstat) over the cores it can use (its processes, capped by its
  CPUs), and
- when the two sides are pinned to disjoint CPUs, how busy its CPUs were (/proc/stat,
  interrupt and softirq time included: on loopback much of the TCP work runs as softirq,
  and a CPU busy with it is as full as one busy with the process).

The verdict answers "did the rates measure the server?":

- **server-bound**: the server side at >= 85%, or its pinned CPUs >= 95% busy with
  under 0.25 core of that taken by other processes (the generator may be saturated too:
  the reason says so; the rate is then still the server's capacity);
- **generator-bound**: the generator at >= 85% (or its CPUs full, as above), the server
  not;
- **host-busy**: neither side reached 85% while other processes took >= 0.25 core:
  rates and latencies are disturbed;
- **unsaturated**: neither side reached 85% on a quiet host: latency-bound (raise -c);
- **unknown**: no ``--server-pid`` and the generator not saturated.

Only the part of a pinned side's CPU time that its processes and the interrupts explain
counts as its load; the rest is other processes', as is the CPU time of every live
process that is neither ours nor a kernel thread (ksoftirqd and kworkers do this run's
network work).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .procstat import descendants

SATURATED = 0.85  # fraction of a side's cores that counts as saturated
FULL = 0.95  # a pinned side's CPUs this busy (whoever used them) cannot give it more
HOST_BUSY_CORES = 0.25  # other processes' use that disturbs a run

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuTimes:
    """Seconds since boot of one CPU (or of all, for the ``cpu`` line of /proc/stat)."""

    work: float  # user + nice + system + steal: time charged to processes
    irq: float  # irq + softirq: interrupt work charged to no process
    total: float


def cpu_times() -> dict[int, CpuTimes]:
    """Per-CPU times from /proc/stat; key -1 is the whole host."""
    out: dict[int, CpuTimes] = {}
    try:
        with open("/proc/stat", "rb") as f:
            lines = [ln for ln in f.read().split(b"\n") if ln.startswith(b"cpu")]
    except OSError:
        return out
    for ln in lines:
        parts = ln.split()
        key = -1 if parts[0] == b"cpu" else int(parts[0][3:])
        v = [int(x) for x in parts[1:9]] + [0] * (8 - len(parts[1:9]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = v
        out[key] = CpuTimes(
            work=(user + nice + system + steal) / _TICKS,
            irq=(irq + softirq) / _TICKS,
            total=sum(v) / _TICKS,
        )
    return out


def affinity(pids: Iterable[int]) -> set[int]:
    """Union of the CPUs the processes may run on (empty when none is alive)."""
    cpus: set[int] = set()
    for pid in pids:
        try:
            cpus |= os.sched_getaffinity(pid)
        except OSError:
            pass
    return cpus


def pin(pids: Iterable[int], cpus: list[int], children: bool = False) -> int:
    """Pin every thread of the processes (and their children) to ``cpus``; returns threads."""
    done = 0
    for pid in descendants(pids) if children else set(pids):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
                done += 1
            except OSError:
                pass
    return done


def cpus_busy(
    a: dict[int, CpuTimes], b: dict[int, CpuTimes], cpus: set[int]
) -> tuple[float, float] | None:
    """(busy, irq) fractions of ``cpus`` between two snapshots (busy includes irq)."""
    work = irq = total = 0.0
    for c in cpus:
        if c in a and c in b:
            work += b[c].work - a[c].work
            irq += b[c].irq - a[c].irq
            total += b[c].total - a[c].total
    if total <= 0:
        return None
    return min(1.0, (work + irq) / total), irq / total


def process_ticks() -> dict[int, tuple[int, bool]]:
    """pid -> (utime + stime in ticks, is a kernel thread) for every process."""
    out: dict[int, tuple[int, bool]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        f2 = raw[raw.rfind(b")") + 2 :].split()
        pid = int(name)
        kthread = pid == 2 or f2[1] == b"2"  # kthreadd and its children
        out[pid] = (int(f2[11]) + int(f2[12]), kthread)
    return out


def others_cores(
    a: dict[int, tuple[int, bool]], b: dict[int, tuple[int, bool]], ours: set[int], wall: float
) -> float:
    """CPU cores used by processes that are neither ours nor kernel threads."""
    if wall <= 0:
        return 0.0
    ticks = 0
    for pid, (t, kthread) in b.items():
        if pid in ours or kthread:
            continue
        ticks += t - a.get(pid, (0, False))[0]
    return max(0, ticks) / _TICKS / wall


@dataclass
class Inputs:
    """What the verdict is made of (recorded in every result, so it can be re-checked).

    ``*_cpus_busy`` / ``*_cpus_irq``: busy and irq+softirq fractions of that side's own
    CPUs, given only when the two sides are pinned to disjoint CPUs.
    """

    generator_cores: float  # the generator's processes, CPU cores over the window
    generator_cap: int  # cores the generator can use
    server_cores: float | None = None  # None: no --server-pid
    server_cap: int = 1
    server_cpus_busy: float | None = None
    server_cpus_irq: float = 0.0
    generator_cpus_busy: float | None = None
    generator_cpus_irq: float = 0.0
    others_cores: float = 0.0  # live processes that are neither ours nor kernel threads


def _load(cores: float, cap: int, busy: float | None, irq: float) -> tuple[float, float, float]:
    """(process fraction, load, CPU time of others on its CPUs in cores) of one side."""
    proc = cores / max(1, cap)
    if busy is None:
        return proc, proc, 0.0
    # Its CPUs' busy time is its own up to process + interrupts (the run's traffic); the
    # rest is someone else's (short-lived processes a /proc scan cannot see).
    load = min(busy, proc + irq)
    return proc, load, (busy - load) * cap


def _full(load: float, cpus_busy: float | None, others_on_cpus: float) -> bool:
    if load >= SATURATED:
        return True
    # Its CPUs had no room left and little of it went to others: it got what it could.
    return (cpus_busy or 0.0) >= FULL and others_on_cpus < HOST_BUSY_CORES


def classify(i: Inputs) -> dict[str, Any]:
    """``{"side": ..., "reason": ..., "inputs": {...}}`` (see the module docstring)."""
    gen_proc, gen, gen_others = _load(
        i.generator_cores, i.generator_cap, i.generator_cpus_busy, i.generator_cpus_irq
    )
    gen_txt = f"generator {gen:.0%} of {i.generator_cap} core(s)"
    if i.server_cores is None:
        side = "generator-bound" if gen >= SATURATED else "unknown"
        reason = gen_txt + "; server CPU not measured (pass --server-pid)"
        return {"side": side, "reason": reason, "inputs": asdict(i)}
    srv_proc, srv, srv_others = _load(
        i.server_cores, i.server_cap, i.server_cpus_busy, i.server_cpus_irq
    )
    others = max(i.others_cores, srv_others + gen_others)
    reason = f"server {srv:.0%} of {i.server_cap} core(s), {gen_txt}"
    if i.server_cpus_busy is not None:
        reason += f" (processes {srv_proc:.0%} / {gen_proc:.0%}, the rest irq/softirq)"
    reason += f", other processes {others:.2f} core"
    if _full(srv, i.server_cpus_busy, srv_others):
        side = "server-bound"
    elif _full(gen, i.generator_cpus_busy, gen_others):
        side = "generator-bound"
    elif others >= HOST_BUSY_CORES:
        side = "host-busy"
    else:
        side = "unsaturated"
    return {"side": side, "reason": reason, "inputs": asdict(i), "others_cores": others}


__all__ = [
    "CpuTimes",
    "Inputs",
    "affinity",
    "classify",
    "cpu_times",
    "cpus_busy",
    "others_cores",
    "pin",
    "process_ticks",
]
