"""CPU seconds and RSS of server and generator processes, read from /proc (Linux)."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may contain spaces or parentheses: split after the last ')'.
    return raw[raw.rfind(b")") + 2 :].decode().split()


def cpu_seconds(pid: int) -> float:
    """CPU time of one live process in seconds (0.0 if it is gone).

    Summed over its threads from /proc/PID/task/*/schedstat (nanoseconds on CPU), which is
    far finer than utime+stime in 10 ms ticks; falls back to utime+stime from
    /proc/PID/stat (fields 14 and 15 of proc(5)) where schedstat is unavailable.
    """
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as fh:
                total += int(fh.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    f = _stat_fields(pid)
    if f is None:
        return 0.0
    return (int(f[11]) + int(f[12])) / _TICKS


def start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot (tells a reused pid from the original)."""
    f = _stat_fields(pid)
    return None if f is None else int(f[19])


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pids: Iterable[int]) -> set[int]:
    """``pids`` and every live process below them."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f is None:
            continue
        children.setdefault(int(f[1]), []).append(int(name))
    out: set[int] = set()
    todo = list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(children.get(p, ()))
    return out


@dataclass
class Snapshot:
    cpu_s: float
    rss: int
    pids: int


class ProcGroup:
    """A set of server processes (optionally with all their children), summed."""

    def __init__(self, pids: Iterable[int], include_children: bool = False) -> None:
        self.pids = list(pids)
        self.include_children = include_children

    def live_pids(self) -> list[int]:
        if self.include_children:
            return sorted(descendants(self.pids))
        return [p for p in self.pids if os.path.exists(f"/proc/{p}")]

    def snapshot(self) -> Snapshot:
        pids = self.live_pids()
        return Snapshot(
            cpu_s=sum(cpu_seconds(p) for p in pids),
            rss=sum(rss_bytes(p) for p in pids),
            pids=len(pids),
        )

    def __bool__(self) -> bool:
        return bool(self.pids)


def host_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host since boot, from /proc/stat."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    total = sum(fields[:8])  # guest time is already inside user
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (total - idle) / _TICKS, total / _TICKS


def self_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else 1_048_576
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
