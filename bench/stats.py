"""Latency samples and percentile math."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

# Per worker and metric: beyond this many samples keep every 2nd, then every 4th...
# so a long echo run costs bounded memory and every part of the run stays represented.
MAX_SAMPLES = 400_000


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Percentile ``p`` (0-100) of already sorted values, linear interpolation (numpy default)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    rank = (n - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """n, mean, p50, p90, p99, p99.9 and max of latency samples (units kept as given)."""
    s = sorted(values)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "mean": sum(s) / len(s),
        "min": s[0],
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "p999": percentile(s, 99.9),
        "max": s[-1],
    }


class Samples:
    """Append-only sample store with bounded memory (stride decimation)."""

    __slots__ = ("_n", "_stride", "count", "max", "values")

    def __init__(self) -> None:
        self.values = array("d")
        self._stride = 1
        self._n = 0
        self.count = 0  # every sample offered, kept or not
        self.max = 0.0  # exact max, decimation or not

    def add(self, v: float) -> None:
        self.count += 1
        if v > self.max:
            self.max = v
        self._n += 1
        if self._n < self._stride:
            return
        self._n = 0
        self.values.append(v)
        if len(self.values) >= MAX_SAMPLES:
            self.values = self.values[::2]
            self._stride *= 2

    def to_list(self) -> list[float]:
        return self.values.tolist()


def merge_summaries(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary over the raw sample lists of several workers (``{"values": [...], "max": m}``)."""
    allv: list[float] = []
    mx = 0.0
    count = 0
    for p in parts:
        allv.extend(p.get("values", ()))
        mx = max(mx, p.get("max", 0.0))
        count += p.get("count", 0)
    out = summarize(allv)
    if allv:
        out["max"] = max(out["max"], mx)
        out["count"] = count
    return out


def cdf_points(values: list[float], points: int = 400) -> tuple[list[float], list[float]]:
    """(x, fraction) pairs for a CDF plot, thinned to about ``points`` points."""
    s = sorted(values)
    n = len(s)
    if n == 0:
        return [], []
    step = max(1, n // points)
    xs = [*s[::step], s[-1]]
    ys = [min(1.0, (i * step + 1) / n) for i in range(len(xs) - 1)] + [1.0]
    return xs, ys
