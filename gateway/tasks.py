"""A task group: background tasks of one gateway, kept alive, reported, cancelled together.

asyncio keeps only a weak reference to a task, so a task nobody holds can vanish mid-run;
and a task that fails with nobody awaiting it fails silently. Every background coroutine
of the gateway (async verifiers, async HTTP handlers, coroutine app callbacks, components'
loops) is spawned here instead: held until done, its failure logged, and cancelled at
shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger("uvgate.tasks")

T = TypeVar("T")


class TaskGroup:
    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, T] | Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` in the background; returns its future (add callbacks to it)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every task but the caller's own and wait for them to finish."""
        me = asyncio.current_task()
        await cancel_and_wait(t for t in self._tasks if t is not me)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for the tasks running now, the caller's excepted."""
        me = asyncio.current_task()
        others = [t for t in self._tasks if t is not me]
        if others:
            await asyncio.wait(others, timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has finished, whatever it raised."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
