"""The cyclic garbage collector, set for a process that is a gateway (``uvgate serve``).

Reference counting frees a connection's objects the moment its socket goes: the life of
a native or a Pusher connection (upgrade, auth, subscriptions, messages, close) makes no
reference cycle (``tests/gateway/test_collector.py`` holds that). The cyclic collector
still makes a generation-0 pass every 700 net allocations of container objects, and each
pass walks every young object still alive: under a storm of connections, the objects of
the connections open at that moment, over and over, to find nothing to collect. Measured
with the native generator (20,000 connections, 200 at a time): 126 passes, about 1 us of
server CPU per connection.

``tune`` raises that first threshold for the process: the passes become rare, each walks
no more than before, and cyclic garbage (an exception's traceback, say) is still
collected, after more allocations. The older generations keep their thresholds. Only
``uvgate serve`` calls it: an application that embeds ``Gateway`` owns its process and its
collector.
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "tune"]

# Net allocations of container objects between two generation-0 passes (CPython: 700).
GEN0_THRESHOLD = 20_000


def tune() -> None:
    """Raise the collector's generation-0 threshold to ``GEN0_THRESHOLD`` (never lower it)."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < GEN0_THRESHOLD:
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
