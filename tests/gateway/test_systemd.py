"""systemd: the example unit passes ``systemd-analyze verify``, and ``uvgate serve`` speaks
the notify protocol to a real unix datagram socket given as ``NOTIFY_SOCKET``."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import systemd
from gateway.config import Config
from tests.served import ROOT, Served

UNIT = ROOT / "examples" / "uvgate.service"
UVGATE = Path(sys.executable).parent / "uvgate"


def listener(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    return sock


def messages(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock`` (none: an empty list)."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(20)
    return out


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.splitlines() if line)


# -- the unit file ------------------------------------------------------------------------
def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing and scripts/test-deps.sh could not install it")
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_example_unit_passes_systemd_analyze_verify(tmp_path: Path):
    # verify checks that ExecStart exists: point it at this checkout's uvgate script,
    # the one line that differs between machines.
    text = UNIT.read_text()
    assert "ExecStart=/opt/uvgate/.venv/bin/uvgate " in text
    unit = tmp_path / "uvgate.service"
    unit.write_text(text.replace("/opt/uvgate/.venv/bin/uvgate", str(UVGATE)))
    result = _verify(unit)
    # systemd-analyze exits 0 for settings it ignores: any output is a finding.
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    # The same check does see a mistake.
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("LimitNOFILE=1048576", "LimitNOFILE=lots"))
    assert "Failed to parse resource value" in _verify(broken).stderr


def test_example_unit_settings():
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    service = parser["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["LimitNOFILE"]) >= Config().max_connections
    # systemd must not kill the service while it is still draining connections.
    assert float(service["TimeoutStopSec"]) > Config().shutdown_grace + 5


# -- the notify protocol --------------------------------------------------------------------
def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert systemd.notify("READY=1") is False


def test_notify_abstract_and_path_sockets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    name = f"uvgate-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.stopping() is True
        assert fields(sock.recv(4096).decode())["STOPPING"] == "1"
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert systemd.ready() is True
        assert fields(sock.recv(4096).decode())["READY"] == "1"
    # Nobody listening any more: False, and a warning instead of an exception.
    assert systemd.ready() is False


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_notifies_ready_once_listening_and_stopping_on_sigterm(tmp_path: Path, workers: int):
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        args = ["--workers", str(workers), "--no-pusher"] if workers > 1 else []
        served = Served(*args, env={"NOTIFY_SOCKET": path})
        try:
            ready = fields(sock.recv(4096).decode())
            assert ready["READY"] == "1"
            # READY means the port accepts connections, for every worker.
            for _ in range(4 * workers):
                with socket.create_connection(("127.0.0.1", served.port), timeout=5):
                    pass
            served.proc.send_signal(signal.SIGTERM)
            assert fields(sock.recv(4096).decode())["STOPPING"] == "1"
            assert served.proc.wait(timeout=20) == 0, served.stop()[1]
            # Only the main process notifies: no READY from the workers.
            assert messages(sock) == []
        finally:
            served.stop()
