"""One scrape, the whole instance: each worker asks its siblings for their figures.

With ``--workers N`` the kernel hands a scrape of ``/metrics`` to any one worker, which
alone knows only its own connections. So each worker also listens on a unix socket in a
private directory the supervisor made (mode 0700, removed when it exits): connecting to
``worker-<i>.sock`` gets worker *i*'s families as a snapshot (``gateway.metrics``), and
the connection is closed. The scraped worker gathers every sibling concurrently, merges
the families (each sample keeps its ``worker`` label, so per-worker series stay apart
and ``sum()`` gives the instance) and adds ``uvgate_worker_up{worker}``: 0 for a sibling
that did not answer within ``TIMEOUT`` (restarting, stuck), whose figures are then
missing from this scrape rather than holding it up.

Bounded: one short connection per sibling per scrape, ``TIMEOUT`` seconds at most, a
snapshot of at most ``MAX_SNAPSHOT`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable

from gateway.metrics import Family, Metric, families_from

__all__ = ["MAX_SNAPSHOT", "TIMEOUT", "SiblingMetrics", "socket_path"]

log = logging.getLogger("uvgate.metrics")

TIMEOUT = 2.0  # seconds a sibling has to answer a scrape
MAX_SNAPSHOT = 8 << 20  # bytes: thousands of families of hundreds of samples


def socket_path(directory: str, worker: int) -> str:
    return os.path.join(directory, f"worker-{worker}.sock")


class SiblingMetrics:
    """A gateway component: serves this worker's snapshot, gathers the others'."""

    def __init__(
        self, directory: str, worker: int, workers: int, snapshot: Callable[[], bytes]
    ) -> None:
        self.directory = directory
        self.worker = worker
        self.workers = workers
        self._snapshot = snapshot  # this worker's families, now
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = socket_path(self.directory, self.worker)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this worker's previous life (a restart)
        self._server = await asyncio.start_unix_server(self._serve, path=path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            with contextlib.suppress(OSError):
                os.unlink(socket_path(self.directory, self.worker))

    def metrics(self) -> Iterable[Metric]:
        return ()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(self._snapshot())
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except Exception as exc:  # a scraper that went away: nothing to fix here
            log.debug("metrics snapshot not sent: %s", exc)
        finally:
            writer.close()

    async def _fetch(self, worker: int) -> list[Family]:
        reader, writer = await asyncio.open_unix_connection(socket_path(self.directory, worker))
        try:
            data = await reader.read(MAX_SNAPSHOT + 1)
            chunks = [data]
            size = len(data)
            while data and size <= MAX_SNAPSHOT:
                data = await reader.read(MAX_SNAPSHOT + 1 - size)
                chunks.append(data)
                size += len(data)
            if size > MAX_SNAPSHOT:
                raise ValueError(f"snapshot over {MAX_SNAPSHOT} bytes")
            return families_from(b"".join(chunks))
        finally:
            writer.close()

    async def gather(self) -> tuple[list[list[Family]], Family]:
        """The siblings' families, and ``uvgate_worker_up`` for every worker."""
        others = [w for w in range(self.workers) if w != self.worker]

        async def one(worker: int) -> list[Family] | None:
            try:
                return await asyncio.wait_for(self._fetch(worker), TIMEOUT)
            except (OSError, ValueError, TimeoutError) as exc:
                log.warning(
                    "worker did not answer the metrics scrape",
                    extra={"fields": {"worker": worker, "problem": str(exc) or type(exc).__name__}},
                )
                return None

        answers = await asyncio.gather(*(one(w) for w in others))
        up = Family("uvgate_worker_up", "1 if the worker's figures are in this scrape", "gauge")
        up.add_sample("uvgate_worker_up", {"worker": str(self.worker)}, 1)
        groups = []
        for worker, families in zip(others, answers, strict=True):
            up.add_sample("uvgate_worker_up", {"worker": str(worker)}, 0 if families is None else 1)
            if families is not None:
                groups.append(families)
        return groups, up
