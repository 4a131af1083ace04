"""``cluster_of``: the same cluster cases on the memory engine and on a real redis-server."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

import pytest

from tests.gateway.cluster.harness import TestNode, memory_cluster, redis_cluster
from tests.redis_server import RedisServer

_prefixes = itertools.count(1)


@pytest.fixture(params=("memory", "redis"))
def cluster_of(
    request: pytest.FixtureRequest,
) -> Callable[[int], contextlib.AbstractAsyncContextManager[list[TestNode]]]:
    """``async with cluster_of(2) as (a, b)``: nodes on the memory engine or on Redis."""
    if request.param == "memory":
        return memory_cluster
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t{next(_prefixes)}"

    def make(size: int) -> contextlib.AbstractAsyncContextManager[list[TestNode]]:
        return redis_cluster(server.url, size, prefix)

    return make
