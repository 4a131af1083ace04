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
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")
JS_FILES = sorted(p.name for p in JS.glob("*.test.mjs"))
NODE_TIMEOUT = 90.0  # seconds for one file; each wait inside is bounded far lower

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
    },
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def write_config(path: Path, port: int) -> None:
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        "node_id = 42",
        'log_level = "warning"',
        "shutdown_grace = 1.0",
    ]
    for app in APPS.values():
        lines.append("")
        lines.append("[[apps]]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in app.items())
    path.write_text("\n".join(lines) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.05)
    pytest.fail(f"gateway not up on port {port} after {timeout} s:\n{log.read_text()}")


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
    port = free_port()
    config = tmp / "uvgate.toml"
    write_config(config, port)
    log = tmp / "gateway.log"
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
        wait_up(port, proc, log)
        yield {
            "UVGATE_WS_HOST": "127.0.0.1",
            "UVGATE_WS_PORT": str(port),
            "UVGATE_API_PORT": str(port),
            "UVGATE_APPS": json.dumps(APPS),
            "UVGATE_GATEWAY_LOG": str(log),
        }
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_js_files_found() -> None:
    assert JS_FILES, f"no *.test.mjs in {JS}"


@pytest.mark.parametrize("name", JS_FILES)
def test_js(name: str, gateway: dict[str, str]) -> None:
    env = {**os.environ, **gateway}
    env.pop("NODE_OPTIONS", None)
    try:
        done = subprocess.run(
            [str(NODE), "--test", "--test-reporter=spec", name],
            cwd=JS,
            env=env,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"node --test {name} did not finish in {NODE_TIMEOUT} s:\n{out}")
    if done.returncode != 0:
        log = Path(gateway["UVGATE_GATEWAY_LOG"]).read_text(errors="replace")
        pytest.fail(
            f"node --test {name} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            f"\n--- gateway log (tail) ---\n{log[-4000:]}",
            pytrace=False,
        )
