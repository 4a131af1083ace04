"""End to end with the real JavaScript clients: pusher-js, laravel-echo and the official
Pusher Node server library (tests/js, pinned by tests/js/package-lock.json) against a
gateway started with ``python -m gateway serve --config <toml>``.

Each ``tests/js/*.test.mjs`` file is one pytest test running ``node --test <file>``; a
failure shows node's output. Skipped only when node itself is missing (``make test``
installs it through scripts/test-deps.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gwtest import self_signed
from tests.redis_server import RedisServer
from tests.served import ROOT

JS = ROOT / "tests" / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")
JS_FILES = sorted(p.name for p in JS.glob("*.test.mjs"))
# Seconds for one file (pytest's own timeout is 120); every wait inside is bounded (5-8 s).
NODE_TIMEOUT = 100.0

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (scripts/test-deps.sh)")

APPS = {
    # auth_failure="close": a bad channel signature closes the socket with 4009.
    "close": {
        "id": "js-close",
        "key": "js-close-key",
        "secret": "js-close-secret",
        "client_events": True,
        "auth_failure": "close",
    },
    # auth_failure="error": subscription_error only, the connection stays.
    "error": {
        "id": "js-error",
        "key": "js-error-key",
        "secret": "js-error-secret",
        "client_events": True,
        "auth_failure": "error",
        "max_presence_members": 3,  # api.test.mjs fills a presence channel
        "cache_ttl": 2,  # api.test.mjs waits for a cached event to expire
    },
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def apps(webhook_port: int) -> dict[str, dict[str, object]]:
    return {
        **APPS,
        # Only webhooks.test.mjs uses it; its node process listens on webhook_port.
        "hooks": {
            "id": "js-hooks",
            "key": "js-hooks-key",
            "secret": "js-hooks-secret",
            "client_events": True,
            "webhooks": [{"url": f"http://127.0.0.1:{webhook_port}/pusher/webhook"}],
        },
        # uvgate's stricter policies (strict.test.mjs).
        "signin_first": {
            "id": "js-signin-first",
            "key": "js-signin-first-key",
            "secret": "js-signin-first-secret",
            "first_message": "signin",
            "require_auth_within": 2.5,
        },
        "deadline": {
            "id": "js-deadline",
            "key": "js-deadline-key",
            "secret": "js-deadline-secret",
            "require_auth_within": 2.5,
        },
    }


def write_config(
    path: Path,
    port: int,
    all_apps: dict[str, dict[str, object]],
    workers: int = 1,
    tls: tuple[Path, Path] | None = None,
    redis_url: str | None = None,
) -> None:
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        f"workers = {workers}",
    ]
    if tls is not None:
        lines += [f"certfile = {json.dumps(str(tls[0]))}", f"keyfile = {json.dumps(str(tls[1]))}"]
    if redis_url is not None:
        lines.append(f"redis_url = {json.dumps(redis_url)}")
    lines += [
        f"node_id = {43 if redis_url else 42}",
        'log_level = "warning"',
        "shutdown_grace = 1.0",
        # The tests fail authentication on purpose, all from 127.0.0.1.
        "auth_fail_limit = 1000",
    ]
    for app in all_apps.values():
        lines.append("")
        lines.append("[[apps]]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in app.items() if k != "webhooks")
        for hook in app.get("webhooks", []):  # type: ignore[attr-defined]
            lines.append("[[apps.webhooks]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in hook.items())
    path.write_text("\n".join(lines) + "\n")


def free_port() -> int:
    """A port free now, below the ephemeral range (32768+) so that no outgoing
    connection of a busy machine takes it before the webhook receiver binds it."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


LISTENING = re.compile(r"uvgate listening on ws://127\.0\.0\.1:(\d+)/")


def wait_up(proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> int:
    """The port the gateway (started with port 0) prints, once /up answers on it."""
    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        if port is None:
            found = LISTENING.search(log.read_text(errors="replace"))
            port = int(found.group(1)) if found else None
        if port is not None:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1) as r,
            ):
                if r.status == 200:
                    return port
        time.sleep(0.05)
    pytest.fail(f"gateway not up after {timeout} s:\n{log.read_text()}")


def ensure_node_modules() -> None:
    if (JS / "node_modules" / "pusher-js").is_dir():
        return
    if NPM is None:
        pytest.fail(
            "tests/js/node_modules is missing and npm is not installed: run scripts/test-deps.sh"
        )
    done = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in tests/js failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A gateway subprocess with the two apps; yields the environment for node."""
    ensure_node_modules()
    tmp = tmp_path_factory.mktemp("pusher-js")
    webhook_port = free_port()
    all_apps = apps(webhook_port)
    config = tmp / "uvgate.toml"
    write_config(config, 0, all_apps)
    # restart.test.mjs stops and starts its own gateway: it needs a fixed port.
    restart_port = free_port()
    restart_config = tmp / "restart.toml"
    write_config(restart_config, restart_port, all_apps)
    # workers.test.mjs runs a 2-worker gateway of its own, the workers sharing Pusher
    # state through a real redis-server (started here, stopped by pid).
    redis = RedisServer()
    redis.start()
    workers_port = free_port()
    workers_config = tmp / "workers.toml"
    write_config(workers_config, workers_port, all_apps, workers=2, redis_url=redis.url)
    # tls.test.mjs runs a wss:// gateway of its own.
    tls = self_signed(tmp)
    tls_port = free_port()
    tls_config = tmp / "tls.toml"
    write_config(tls_config, tls_port, all_apps, tls=tls)
    log = tmp / "gateway.log"
    # The gateway reads UVGATE_<OPTION> variables: none of the caller's may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("UVGATE_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        port = wait_up(proc, log)
        yield {
            "UVGATE_JS_WS_HOST": "127.0.0.1",
            "UVGATE_JS_WS_PORT": str(port),
            "UVGATE_JS_API_PORT": str(port),
            "UVGATE_JS_APPS": json.dumps(all_apps),
            "UVGATE_JS_WEBHOOK_PORT": str(webhook_port),
            "UVGATE_JS_PYTHON": sys.executable,
            "UVGATE_JS_ROOT": str(ROOT),
            "UVGATE_JS_RESTART_CONFIG": str(restart_config),
            "UVGATE_JS_RESTART_PORT": str(restart_port),
            "UVGATE_JS_WORKERS_CONFIG": str(workers_config),
            "UVGATE_JS_WORKERS_PORT": str(workers_port),
            "UVGATE_JS_TLS_CONFIG": str(tls_config),
            "UVGATE_JS_TLS_PORT": str(tls_port),
            "NODE_EXTRA_CA_CERTS": str(tls[0]),
            "UVGATE_JS_GATEWAY_LOG": str(log),
        }
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        redis.stop()


def test_js_files_found() -> None:
    assert JS_FILES, f"no *.test.mjs in {JS}"


def node_version() -> tuple[int, ...]:
    out = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, timeout=30)
    return tuple(int(x) for x in re.findall(r"\d+", out.stdout)[:3])


def node_flags() -> list[str]:
    """``--test-force-exit`` (Node >= 20.14): faye-websocket, inside pusher-js, arms a 30 s
    close timer that outlives a socket the server already closed (4009); without the flag
    (Debian's Node 18) a file just ends 30 s later."""
    flags = ["--test", "--test-reporter=spec"]
    version = node_version()
    if version < (18, 19):
        pytest.fail(f"node {version} is too old for these tests (18.19+ needed)")
    if version >= (20, 14):
        flags.append("--test-force-exit")
    return flags


class NodeRun:
    """One ``node --test <file>`` started in the background; output goes to a file."""

    def __init__(self, name: str, env: dict[str, str], out: Path, flags: list[str]) -> None:
        self.name = name
        self.out = out
        with out.open("wb") as fh:
            self.proc = subprocess.Popen(
                [str(NODE), *flags, name],
                cwd=JS,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self.deadline = time.monotonic() + NODE_TIMEOUT

    def wait(self) -> tuple[int | None, str]:
        try:
            code: int | None = self.proc.wait(timeout=max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            code = None
        return code, self.out.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def node_runs(
    request: pytest.FixtureRequest,
    gateway: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, NodeRun]]:
    """Every selected JS file runs at once (each uses its own channels, users and ports),
    so the suite takes about as long as its slowest file; each test waits for its own."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_js" and hasattr(item, "callspec")
    ]
    env = {**os.environ, **gateway}
    env.pop("NODE_OPTIONS", None)
    out = tmp_path_factory.mktemp("node-output")
    flags = node_flags()
    runs = {name: NodeRun(name, env, out / f"{name}.log", flags) for name in selected or JS_FILES}
    try:
        yield runs
    finally:
        for run in runs.values():
            run.stop()


@pytest.mark.parametrize("name", JS_FILES)
def test_js(name: str, gateway: dict[str, str], node_runs: dict[str, NodeRun]) -> None:
    code, output = node_runs[name].wait()
    if code == 0:
        return
    log = Path(gateway["UVGATE_JS_GATEWAY_LOG"]).read_text(errors="replace")
    what = f"did not finish in {NODE_TIMEOUT} s" if code is None else f"failed (exit {code})"
    pytest.fail(
        f"node --test {name} {what}:\n{output}\n--- gateway log (tail) ---\n{log[-4000:]}",
        pytrace=False,
    )
