"""Run the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT).

The supervisor forks the workers, forwards SIGTERM/SIGINT to them, restarts a
worker that dies unexpectedly (at most ``MAX_RESTARTS`` per minute), and exits 0
once every worker has shut down gracefully. Each worker has its own loop and its
own registry; its index is part of every connection id it issues.

Under systemd (``Type=notify``) the main process sends ``READY=1`` once every worker
listens and ``STOPPING=1`` when SIGTERM/SIGINT arrives (``gateway.systemd``); workers
never notify.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from gateway import systemd
from gateway.config import Config

log = logging.getLogger("uvgate.workers")

MAX_RESTARTS = 5


async def serve_worker(
    config: Config,
    worker: int = 0,
    on_ready: Callable[[int], None] | None = None,
    *,
    notify: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT; with ``notify``, tell systemd when listening and when
    the shutdown begins (the single-process case: this process is the service)."""
    from gateway.server import Gateway

    gateway = Gateway(config, worker=worker)
    await gateway.start()
    if on_ready is not None:
        on_ready(gateway.port)
    if not notify:
        await gateway.serve(install_signals=True)
        return
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    told = False

    def stop() -> None:
        nonlocal told
        if not told:
            told = True
            systemd.stopping()
        gateway.request_shutdown()

    # Handlers first: a SIGTERM sent as soon as READY arrives must find them.
    for sig in signals:
        loop.add_signal_handler(sig, stop)
    systemd.ready()
    try:
        await gateway.serve()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _run_loop(
    config: Config, worker: int, on_ready: Callable[[int], None] | None, notify: bool = False
) -> None:
    import uvloop

    uvloop.run(serve_worker(config, worker, on_ready, notify=notify))


def _reserve_port(host: str) -> socket.socket:
    """Hold a free port for the workers (bound with SO_REUSEPORT, never listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def run(config: Config, on_ready: Callable[[int], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit status."""
    if config.workers == 1:
        _run_loop(config, 0, on_ready, notify=True)
        return 0
    return _supervise(config, on_ready)


def _supervise(config: Config, on_ready: Callable[[int], None] | None) -> int:
    holder = None
    if config.port == 0:
        holder = _reserve_port(config.host)
        config = config.replace(port=holder.getsockname()[1])
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False
    restarts: list[float] = []
    # Each worker writes one byte here once it listens, so "ready" means every
    # worker accepts (with SO_REUSEPORT the kernel spreads new connections only
    # over the sockets bound so far).
    ready_r, ready_w = os.pipe()

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            # Only the supervisor (systemd's main process) speaks for the service.
            os.environ.pop("NOTIFY_SOCKET", None)
            code = 0

            def listening(_port: int) -> None:
                # A worker restarted later finds the pipe closed: harmless.
                with contextlib.suppress(OSError):
                    os.write(ready_w, b"1")

            try:
                with contextlib.suppress(OSError):
                    os.close(ready_r)
                _run_loop(config, index, listening)
            except BaseException:
                log.exception("worker %d crashed", index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        first, stopping = not stopping, True  # set before sending: signals can nest
        if first:
            systemd.stopping()
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(config.workers):
        spawn(index)
    os.close(ready_w)
    if _wait_ready(ready_r, config.workers, 15.0):
        if on_ready is not None:
            on_ready(config.port)
        systemd.ready()
    status = 0
    while children:
        try:
            pid, wstatus = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, -1)
        if index < 0:
            continue
        code = os.waitstatus_to_exitcode(wstatus)
        if stopping:
            # A worker still starting up dies of the SIGTERM we forwarded (its
            # handler is not installed yet): that is a clean stop too.
            if code not in (0, -signal.SIGTERM):
                status = 1
            continue
        now = time.monotonic()
        restarts[:] = [t for t in restarts if now - t < 60] + [now]
        if len(restarts) > MAX_RESTARTS:
            log.error("worker %d exited (%d); too many restarts, stopping", index, code)
            status = 1
            forward(signal.SIGTERM, None)
            continue
        log.error("worker %d exited unexpectedly (%d); restarting", index, code)
        spawn(index)
    if holder is not None:
        holder.close()
    return status


def _wait_ready(fd: int, workers: int, timeout: float) -> bool:
    """Wait until ``workers`` workers reported listening; False on timeout or death."""
    import select

    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < workers:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                log.error("only %d of %d workers listening after %.0f s", seen, workers, timeout)
                return False
            chunk = os.read(fd, workers)
            if not chunk:  # every worker exited before listening
                return False
            seen += len(chunk)
        return True
    finally:
        os.close(fd)
