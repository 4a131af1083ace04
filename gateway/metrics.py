"""Metrics: what each part of the gateway reports, gathered at scrape time.

The hot path only increments plain integers (``Stats``, the API's and the webhook
dispatcher's counters). A part that has figures to show implements ``MetricSource``;
``/metrics`` asks every source when it is scraped and renders the Prometheus text format
(``# HELP`` and ``# TYPE`` for every family).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family: its samples, each with its own labels (beyond the common ones)."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    @classmethod
    def single(
        cls, name: str, kind: Literal["counter", "gauge"], help: str, value: float
    ) -> Metric:
        return cls(name, kind, help, [({}, value)])


class MetricSource(Protocol):
    def metrics(self) -> Iterable[Metric]: ...


def _labels(common: Labels, own: Labels) -> str:
    merged = {**common, **own}
    if not merged:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in merged.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: Iterable[Metric], common: Labels) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for own, value in metric.samples:
            lines.append(f"{metric.name}{_labels(common, own)} {_number(value)}")
    return "\n".join(lines) + "\n"
