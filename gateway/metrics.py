"""Metrics: what each part of the gateway reports, exposed with ``prometheus-client``.

The hot path only increments plain integers (``Stats``, the API's and the webhook
dispatcher's counters). A part that has figures to show implements ``MetricSource``
and returns ``Metric`` records; nothing else is kept between scrapes. When ``/metrics``
is scraped, ``PartsCollector`` asks every source and turns the records into Prometheus
families, next to ``prometheus-client``'s own ``process_*`` and ``python_*`` collectors;
``WorkerLabel`` puts the worker's index on every sample, and ``prometheus-client``
renders the text format (``# HELP`` and ``# TYPE`` for every family).

With several workers each one can hand its families to a sibling as a snapshot
(``snapshot`` / ``families_from``, a small JSON document); ``merge`` joins the
families of all workers, so one scrape shows the whole instance
(``gateway.workermetrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "Metric",
    "MetricSource",
    "PartsCollector",
    "WorkerLabel",
    "families_from",
    "merge",
    "process_collectors",
    "render",
    "snapshot",
]

Labels = Mapping[str, str]
# The classic text format, which is what ``generate_latest`` writes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family as a part reports it: its samples, each with its own labels.

    A counter is named with its ``_total`` suffix, as it appears on the wire."""

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


def _family(metric: Metric) -> Family:
    if metric.kind == "counter":
        # prometheus-client names a counter family without the suffix and its samples
        # with it.
        base = metric.name.removesuffix("_total")
        family = Family(base, metric.help, "counter")
        sample = base + "_total"
    else:
        family = Family(metric.name, metric.help, "gauge")
        sample = metric.name
    for labels, value in metric.samples:
        family.add_sample(sample, dict(labels), value)
    return family


class PartsCollector(Collector):
    """The ``Metric`` records of ``source`` (read at every scrape) as families."""

    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Family]:
        for metric in self.source():
            yield _family(metric)


class WorkerLabel(Collector):
    """The families of ``collectors``, with ``worker="<index>"`` on every sample."""

    def __init__(self, collectors: Sequence[Collector], worker: int) -> None:
        self.collectors = list(collectors)
        self.worker = str(worker)

    def collect(self) -> Iterator[Family]:
        for collector in self.collectors:
            for family in collector.collect():
                labelled = Family(family.name, family.documentation, family.type, family.unit)
                for s in family.samples:
                    labelled.add_sample(
                        s.name, {"worker": self.worker, **s.labels}, s.value, s.timestamp
                    )
                yield labelled


def process_collectors() -> list[Collector]:
    """``process_*`` (CPU, memory, file descriptors, start time) and ``python_*`` (version,
    garbage collector) of this process; not registered anywhere global."""
    return [
        ProcessCollector(registry=None),
        PlatformCollector(registry=None),
        # It registers itself wherever it is told: a registry of its own, never the global.
        GCCollector(registry=CollectorRegistry(auto_describe=False)),
    ]


class _Families(Collector):
    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Family]:
        return iter(self.families)


def render(families: Iterable[Family]) -> bytes:
    """The text exposition format of ``families``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


# -- between workers ---------------------------------------------------------------------------
def snapshot(collector: Collector) -> bytes:
    """Every family ``collector`` has now, as JSON (what a sibling worker merges)."""
    return orjson.dumps(
        [
            [
                f.name,
                f.type,
                f.documentation,
                f.unit,
                [[s.name, s.labels, s.value] for s in f.samples],
            ]
            for f in collector.collect()
        ]
    )


def families_from(data: bytes) -> list[Family]:
    """The families of a ``snapshot`` (``ValueError`` if it is not one)."""
    try:
        items: Any = orjson.loads(data)
        if not isinstance(items, list):
            raise TypeError("a list of families expected")
        out = []
        for name, kind, documentation, unit, samples in items:
            family = Family(str(name), str(documentation), str(kind), str(unit))
            for sample, labels, value in samples:
                # JSON has no NaN: orjson writes it as null.
                number = float("nan") if value is None else float(value)
                family.add_sample(str(sample), {str(k): str(v) for k, v in labels.items()}, number)
            out.append(family)
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a metrics snapshot: {exc}") from None
    return out


def merge(groups: Iterable[Iterable[Family]]) -> list[Family]:
    """One family per name, with the samples of every group (workers), in order."""
    merged: dict[str, Family] = {}
    for families in groups:
        for family in families:
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Family(
                    family.name, family.documentation, family.type, family.unit
                )
            elif into.type != family.type:
                continue  # a worker of another version: keep the families consistent
            into.samples.extend(family.samples)
    return list(merged.values())
