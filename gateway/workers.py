"""Run the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT).

Before anything listens, the address is claimed (``gateway.portguard``): a second uvgate
on a port already served, or a port in use by anything else, is one line and a non-zero
exit, whatever the worker count.

The supervisor forks the workers, forwards SIGTERM/SIGINT to them, restarts a worker
that dies unexpectedly (at most ``MAX_RESTARTS`` per minute), and exits 0 once every
worker has shut down gracefully. Each worker has its own loop and its own registry; its
index is part of every connection id it issues. Workers report to the supervisor on a
pipe, one line each: ``ready``, ``reloaded``/``reload-failed``, or ``error <message>``
when a worker cannot listen (then the supervisor stops them all and says it once).

SIGHUP reloads the configuration (``gateway.reload``). With workers, the supervisor
reads and checks the new configuration once: a bad file is one log line and nothing is
forwarded; a good one is announced (options that need a restart are named once) and
SIGHUP goes to every worker, which reads it again and applies it to its own gateway
(each worker owns its connections, TLS context, verifier and apps: there is nothing the
supervisor could change for them). Workers restarted later start with the new
configuration.

Under systemd (``Type=notify``) the main process sends ``READY=1`` once every worker
listens, ``RELOADING=1`` then ``READY=1`` around a reload (once the workers confirmed
it), and ``STOPPING=1`` when SIGTERM/SIGINT arrives (``gateway.systemd``); workers
never notify.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable

from gateway import collector, systemd
from gateway.config import Config, ConfigError
from gateway.portguard import ListenError, claim, describe_bind_error
from gateway.reload import ReloadPlan, plan_reload

__all__ = ["Reloader", "run", "serve_worker"]

log = logging.getLogger("uvgate.workers")

MAX_RESTARTS = 5
READY_TIMEOUT = 15.0  # seconds for every worker to listen
RELOAD_TIMEOUT = 30.0  # seconds for every worker to confirm a reload
EXIT_LISTEN = 3  # a worker's exit status when it cannot listen: no restart

# Re-read and check the configuration, given the running one (which keeps what a reload
# must not change by accident, such as the throw-away demo secret); ``ConfigError`` with
# one line if it is not usable.
Reloader = Callable[[Config], Config]
Status = Callable[[str], None]


def _log_reload(plan: ReloadPlan, *, restart_note: bool) -> None:
    log.info(
        "configuration reloaded",
        extra={"fields": {"changed": ",".join(plan.changed) or "-"}},
    )
    if plan.restart and restart_note:
        log.warning(
            "options changed in the configuration need a restart; running with the old values",
            extra={"fields": {"options": ",".join(plan.restart)}},
        )


def _apply_logging(plan: ReloadPlan) -> None:
    if plan.logging:
        from gateway.logs import setup_logging

        setup_logging(plan.config.log_level, plan.config.log_format)


async def serve_worker(
    config: Config,
    worker: int = 0,
    on_ready: Callable[[int], None] | None = None,
    *,
    notify: bool = False,
    reload: Reloader | None = None,
    status: Status | None = None,
    metrics_dir: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, reload on SIGHUP. With ``notify`` (the single-process
    case: this process is the service), tell systemd when listening, around reloads and
    when the shutdown begins; ``status`` reports to a supervisor instead. ``metrics_dir``:
    where the workers of this instance exchange their metrics (``gateway.workermetrics``).
    """
    from gateway.server import Gateway

    gateway = Gateway(config, worker=worker)
    if metrics_dir is not None:
        gateway.share_metrics(metrics_dir, config.workers)
    try:
        await gateway.start()
    except OSError as exc:
        # A bind error carries an errno; a start error of our own (the cluster: Redis
        # unreachable, node id taken) is already a sentence for the user.
        if exc.errno is None:
            raise ListenError(_one_line(exc)) from None
        raise ListenError(describe_bind_error(config.host, config.port, exc)) from None
    collector.tune()  # this process is the gateway: its collector is ours to set
    loop = asyncio.get_running_loop()
    told = False
    reloading = asyncio.Lock()

    def stop() -> None:
        nonlocal told
        if notify and not told:
            told = True
            systemd.stopping()
        gateway.request_shutdown()

    def failed(exc: Exception) -> None:
        log.error(
            "reload failed; running on with the previous configuration",
            extra={"fields": {"worker": worker, "problem": _one_line(exc)}},
        )
        if status is not None:
            status("reload-failed")

    async def do_reload() -> None:
        async with reloading:
            try:
                if reload is None:
                    raise ConfigError("this gateway was started without a configuration to read")
                new = reload(gateway.config)
            except (ConfigError, ValueError, OSError) as exc:
                failed(exc)  # not read: no reload began, systemd need not hear of it
                return
            if notify:
                systemd.reloading()
            try:
                plan = await gateway.reload(new)
            except (ConfigError, ValueError, OSError) as exc:
                failed(exc)
            else:
                _apply_logging(plan)
                # With workers, the supervisor named the restart-only options once.
                _log_reload(plan, restart_note=status is None)
                if status is not None:
                    status("reloaded")
            finally:
                if notify:
                    systemd.ready()

    def hup() -> None:
        if not gateway.shutting_down:
            gateway.tasks.spawn(do_reload())

    signals = (signal.SIGTERM, signal.SIGINT)
    # Handlers first: a SIGTERM or SIGHUP sent as soon as the start line or READY is
    # seen must find them (SIGHUP's default action would kill the gateway).
    for sig in signals:
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, hup)
    if on_ready is not None:
        on_ready(gateway.port)
    if notify:
        systemd.ready()
    try:
        await gateway.serve()
    finally:
        for sig in (*signals, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


def _run_loop(
    config: Config,
    worker: int,
    on_ready: Callable[[int], None] | None,
    notify: bool = False,
    reload: Reloader | None = None,
    status: Status | None = None,
    metrics_dir: str | None = None,
) -> None:
    import uvloop

    uvloop.run(
        serve_worker(
            config,
            worker,
            on_ready,
            notify=notify,
            reload=reload,
            status=status,
            metrics_dir=metrics_dir,
        )
    )


def _reserve_port(host: str) -> socket.socket:
    """Hold a free port for the workers (bound with SO_REUSEPORT, never listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def run(
    config: Config,
    on_ready: Callable[[int], None] | None = None,
    *,
    reload: Reloader | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit status. ``ListenError`` (one
    line) when the address cannot be served."""
    ports = [config.port]
    if config.pusher and config.api_port not in (None, config.port):
        ports.append(config.api_port)
    with claim(config.host, ports):
        if config.workers == 1:
            _run_loop(config, 0, on_ready, notify=True, reload=reload)
            return 0
        return _Supervisor(config, on_ready, reload).run()


class _Supervisor:
    """The main process of ``workers > 1``: forks, watches, forwards, reloads."""

    def __init__(
        self, config: Config, on_ready: Callable[[int], None] | None, reload: Reloader | None
    ) -> None:
        self.holder = None
        if config.port == 0:
            self.holder = _reserve_port(config.host)
            config = config.replace(port=self.holder.getsockname()[1])
        self.config = config
        self.on_ready = on_ready
        self.reload = reload
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.hup = False
        self.restarts: list[float] = []
        self.status = 0
        self.failure: str | None = None  # a worker could not listen
        # Workers report on this pipe (one short line per write: atomic under PIPE_BUF).
        self.report_r, self.report_w = os.pipe()
        os.set_blocking(self.report_w, False)  # a worker never waits for the supervisor
        self.pending = b""
        self.ready: set[int] = set()
        self.announced = False
        self.ready_deadline = 0.0
        self.reload_acks: set[int] | None = None  # workers yet to confirm the reload
        self.reload_deadline = 0.0
        # The workers' metrics sockets: private to this user, removed at exit.
        self.metrics_dir = tempfile.mkdtemp(prefix="uvgate-metrics-")

    # -- workers -----------------------------------------------------------------------------
    def spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            self._worker(index)
        self.children[pid] = index

    def _worker(self, index: int) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop installs its handler
        # Only the supervisor (systemd's main process) speaks for the service.
        os.environ.pop("NOTIFY_SOCKET", None)
        code = 0
        report_w = self.report_w

        def report(line: str) -> None:
            with contextlib.suppress(OSError):
                os.write(report_w, f"{line} {index}\n".encode()[:4000])

        try:
            with contextlib.suppress(OSError):
                os.close(self.report_r)
            _run_loop(
                self.config,
                index,
                lambda _port: report("ready"),
                reload=self.reload,
                status=report,
                metrics_dir=self.metrics_dir,
            )
        except ListenError as exc:
            # Said once, by the supervisor, whatever the number of workers.
            with contextlib.suppress(OSError):
                os.write(report_w, f"error {index} {_one_line(exc)}\n".encode()[:4000])
            code = EXIT_LISTEN
        except BaseException:
            log.exception("worker %d crashed", index)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def forward(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # -- signals (handlers only set flags or forward; the loop does the work) -----------------
    def _on_stop(self, signum: int, _frame: object) -> None:
        first, self.stopping = not self.stopping, True  # set before sending: signals nest
        if first:
            systemd.stopping()
        self.forward(signal.SIGTERM)

    def _on_hup(self, signum: int, _frame: object) -> None:
        self.hup = True

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            for index in range(self.config.workers):
                self.spawn(index)
            self.ready_deadline = time.monotonic() + READY_TIMEOUT
            while self.children:
                if self.hup and not self.stopping:
                    self.hup = False
                    self._reload()
                self._read_reports(0.1)
                self._reap()
                self._check_deadlines()
        finally:
            os.close(self.report_r)
            os.close(self.report_w)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            if self.holder is not None:
                self.holder.close()
        if self.failure is not None:
            raise ListenError(self.failure)
        return self.status

    def _read_reports(self, timeout: float) -> None:
        try:
            readable, _, _ = select.select([self.report_r], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
            return
        if not readable:
            return
        chunk = os.read(self.report_r, 65536)
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._report(line.decode(errors="replace"))

    def _report(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        index_text, _, message = rest.partition(" ")
        try:
            index = int(index_text)
        except ValueError:
            return
        if kind == "ready":
            self.ready.add(index)
            if not self.announced and len(self.ready) >= self.config.workers:
                self.announced = True
                if self.on_ready is not None:
                    self.on_ready(self.config.port)
                systemd.ready()
        elif kind in ("reloaded", "reload-failed"):
            if self.reload_acks is not None:
                self.reload_acks.discard(index)
                if not self.reload_acks:
                    self._reload_done()
        elif kind == "error" and self.failure is None:
            self.failure = message
            self.status = 1
            if not self.stopping:
                self.stopping = True
                self.forward(signal.SIGTERM)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            index = self.children.pop(pid, -1)
            if index < 0:
                continue
            self._exited(index, os.waitstatus_to_exitcode(wstatus))

    def _exited(self, index: int, code: int) -> None:
        if self.reload_acks is not None:
            self.reload_acks.discard(index)
            if not self.reload_acks:
                self._reload_done()
        if self.stopping:
            # A worker still starting up dies of the SIGTERM we forwarded (its handler is
            # not installed yet): that is a clean stop too.
            if code not in (0, -signal.SIGTERM, EXIT_LISTEN):
                self.status = 1
            return
        if code == EXIT_LISTEN:
            # It wrote why on the pipe (read before the next reap, or now).
            self._read_reports(0.0)
            if self.failure is None:
                self.failure = f"worker {index} could not listen"
            self.status = 1
            self.stopping = True
            self.forward(signal.SIGTERM)
            return
        now = time.monotonic()
        self.restarts[:] = [t for t in self.restarts if now - t < 60] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            log.error("worker %d exited (%d); too many restarts, stopping", index, code)
            self.status = 1
            self._on_stop(signal.SIGTERM, None)
            return
        log.error("worker %d exited unexpectedly (%d); restarting", index, code)
        self.spawn(index)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        if not self.announced and self.ready_deadline and now > self.ready_deadline:
            self.ready_deadline = 0.0
            log.error(
                "only %d of %d workers listening after %.0f s",
                len(self.ready),
                self.config.workers,
                READY_TIMEOUT,
            )
        if self.reload_acks and now > self.reload_deadline:
            log.error(
                "workers %s did not confirm the reload within %.0f s",
                ",".join(map(str, sorted(self.reload_acks))),
                RELOAD_TIMEOUT,
            )
            self._reload_done()

    # -- reload --------------------------------------------------------------------------------
    def _reload(self) -> None:
        if self.reload is None:
            log.error("reload failed: started without a configuration to read")
            return
        try:
            new = self.reload(self.config)
            plan = plan_reload(self.config, new)
        except (ConfigError, ValueError, OSError) as exc:
            # Checked once here: a bad file is one line, and no worker is disturbed.
            log.error(
                "reload failed; running on with the previous configuration",
                extra={"fields": {"problem": _one_line(exc)}},
            )
            return
        systemd.reloading()
        _apply_logging(plan)
        if plan.restart:
            log.warning(
                "options changed in the configuration need a restart; running with the old values",
                extra={"fields": {"options": ",".join(plan.restart)}},
            )
        # Workers started from now on (restarts) get the new configuration.
        self.config = plan.config
        self.reload_acks = set(self.children.values())
        self.reload_deadline = time.monotonic() + RELOAD_TIMEOUT
        self.forward(signal.SIGHUP)
        if not self.reload_acks:
            self._reload_done()

    def _reload_done(self) -> None:
        self.reload_acks = None
        systemd.ready()
