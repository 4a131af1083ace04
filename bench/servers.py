"""Starting and stopping the servers of the comparison (pinned, logged, always killed by pid)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from .procstat import descendants, start_time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
PEERS = os.path.join(BENCH_DIR, "peers")
NODE_DIR = os.path.join(PEERS, "node_ws")


@dataclass
class ServerSpec:
    name: str
    title: str
    command: Callable[[str, int, str, str], list[str]]
    check: Callable[[], str | None]  # None when runnable, else why not
    multiprocess: bool = False
    # Serves Pusher v7 on /app/{key} (12345/app-key/app-secret) with this command.
    pusher_command: Callable[[str, int, str, str], list[str]] | None = None


def _py_peer(script: str) -> Callable[[str, int, str, str], list[str]]:
    def cmd(host: str, port: int, secret: str, app: str) -> list[str]:
        path = os.path.join(PEERS, script)
        return [
            sys.executable,
            path,
            "--host",
            host,
            "--port",
            str(port),
            "--secret",
            secret,
            "--app",
            app,
        ]

    return cmd


def _uvgate_cmd(workers: int = 1) -> Callable[[str, int, str, str], list[str]]:
    def cmd(host: str, port: int, secret: str, app: str) -> list[str]:
        out = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--verifier",
            "hmac",
            "--secret",
            secret,
            "--app",
            app,
        ]
        if workers > 1:
            # Native only: Pusher with workers needs --redis (the cluster), not started here.
            out += ["--workers", str(workers), "--no-pusher"]
        return out

    return cmd


def _uvgate_pure_cmd(host: str, port: int, secret: str, app: str) -> list[str]:
    # The pure-Python twin of the hot path (``env`` execs: the server keeps the pid).
    return ["env", "UVGATE_PURE_PYTHON=1", *_uvgate_cmd()(host, port, secret, app)]


def _uvgate_pure_pusher_cmd(host: str, port: int, secret: str, app: str) -> list[str]:
    return ["env", "UVGATE_PURE_PYTHON=1", *_uvgate_pusher_cmd(host, port, secret, app)]


def _uvgate_pusher_cmd(host: str, port: int, secret: str, app: str) -> list[str]:
    # Pusher is served next to the native endpoint; the app is given explicitly.
    return [
        *_uvgate_cmd()(host, port, secret, "echo"),
        "--app-id",
        "12345",
        "--app-key",
        "app-key",
        "--app-secret",
        "app-secret",
    ]


def _check_uvgate() -> str | None:
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        return "`python -m gateway serve` is not runnable yet: " + (r.stderr.strip()[-200:] or "?")
    return None


def _check_module(mod: str) -> Callable[[], str | None]:
    def check() -> str | None:
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, timeout=30)
        return None if r.returncode == 0 else f"python module {mod} is not installed"

    return check


def _import_error(mod: str) -> str | None:
    r = subprocess.run(
        [sys.executable, "-c", f"import {mod}"], capture_output=True, text=True, timeout=60
    )
    if r.returncode == 0:
        return None
    lines = r.stderr.strip().splitlines()
    return lines[-1] if lines else f"import {mod} failed"


def ensure_socketify() -> str | None:
    """socketify's bundled uWebSockets library needs libuv1: install it with apt when root."""
    why = _import_error("socketify")
    if why is None:
        return None
    if "No module named" in why:
        return "python module socketify is not installed (pip install socketify: the bench extra)"
    if "libuv" in why and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing libuv1 (needed by socketify) with apt-get ...", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "libuv1"],
            env=env,
            capture_output=True,
            timeout=600,
        )
        why = _import_error("socketify")
        if why is None:
            return None
    return f"socketify does not load here: {why[-200:]} (on Debian: apt-get install libuv1)"


def ensure_node() -> str | None:
    """Install the pinned ws into bench/peers/node_ws/node_modules with `npm ci` if missing."""
    if shutil.which("node") is None:
        return "node is not installed"
    if os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    print("installing the node ws peer with npm ci ...", flush=True)
    r = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        return "npm ci failed: " + r.stderr.strip()[-300:]
    return None


def _node_cmd(host: str, port: int, secret: str, app: str) -> list[str]:
    return [
        "node",
        os.path.join(NODE_DIR, "server.js"),
        "--host",
        host,
        "--port",
        str(port),
        "--secret",
        secret,
        "--app",
        app,
    ]


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec(
            "uvgate",
            "uvgate",
            _uvgate_cmd(),
            _check_uvgate,
            multiprocess=True,
            pusher_command=_uvgate_pusher_cmd,
        ),
        ServerSpec(
            "uvgate-py",
            "uvgate, pure-Python twin (UVGATE_PURE_PYTHON=1)",
            _uvgate_pure_cmd,
            _check_uvgate,
            pusher_command=_uvgate_pure_pusher_cmd,
        ),
        ServerSpec(
            "raw",
            "raw uvloop probe",
            _py_peer("raw_probe.py"),
            _check_module("uvloop"),
            pusher_command=_py_peer("raw_probe.py"),
        ),
        ServerSpec("picows", "picows", _py_peer("picows_server.py"), _check_module("picows")),
        ServerSpec(
            "socketify",
            "socketify (uWebSockets)",
            _py_peer("socketify_server.py"),
            ensure_socketify,
        ),
        ServerSpec(
            "websockets",
            "websockets",
            _py_peer("websockets_server.py"),
            _check_module("websockets"),
        ),
        ServerSpec("aiohttp", "aiohttp", _py_peer("aiohttp_server.py"), _check_module("aiohttp")),
        ServerSpec("node", "node + ws", _node_cmd, ensure_node),
    )
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {host}:{port} within {timeout:.0f}s")


class ServerPool:
    """Every server started goes through here and is killed by pid on exit, error or Ctrl-C."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        os.makedirs(log_dir, exist_ok=True)
        self._old: dict[int, object] = {}

    def __enter__(self) -> ServerPool:
        def on_term(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        self._old[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]

    def start(
        self,
        cmd: list[str],
        host: str,
        port: int,
        name: str,
        cpu: int | None,
        cwd: str = REPO_DIR,
        timeout: float = 20.0,
    ) -> subprocess.Popen[bytes]:
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.procs.append(proc)
        try:
            wait_port(host, port, proc, timeout)
        except BaseException:
            self.stop(proc)
            raise
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        # The server and any workers it forked, with start times so a reused pid is never hit.
        pids = {p: start_time(p) for p in descendants([proc.pid])}
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pid in pids:
            if pid != proc.pid and start_time(pid) == pids[pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            try:
                self.stop(proc)
            except Exception as exc:  # keep killing the others
                print(f"could not stop pid {proc.pid}: {exc}", file=sys.stderr)
