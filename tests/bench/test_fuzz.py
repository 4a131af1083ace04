"""``uvgate-bench fuzz`` against a live ``uvgate serve`` (real sockets, real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from bench.cli import main as bench_main
from bench.fuzz_cases import KINDS, Plan, Target
from bench.fuzz_clients import CATEGORIES, _frames, _responses, run_plan
from bench.servers import free_port

SECRET = "fuzz-secret"
# Fast kinds (no slowloris, no 3 s waits for answers that never come) that cover the
# head, the frames, both issue 11 crashes that live in protocol/ and the good clients.
QUICK_KINDS = (
    "bad_key,bad_extension_offer,bad_request_line,oversize_headers,bad_utf8,huge_length,"
    "reserved_bits_or_opcode,bad_close,random_bytes_frames,bit_flipped_frames"
)


class Server:
    """``uvgate serve`` on a free port, its log in a file; stopped by pid."""

    def __init__(self, log: Path, *args: str) -> None:
        self.port = free_port()
        self.log = log
        cmd = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--secret", SECRET, *args]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text(errors="replace"):
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "server.log", "--deflate")
    yield srv
    srv.stop()


def _fuzz(url: str, pid: int, out: Path, *extra: str) -> tuple[int, dict]:
    argv = ["fuzz", "--url", url, "--secret", SECRET, "--server-pid", str(pid)]
    argv += ["--json", str(out), "--quiet", "--settle", "5", *extra]
    rc = bench_main(argv)
    return rc, json.loads(out.read_text())


def test_short_run_reports_a_healthy_server(server: Server, tmp_path: Path) -> None:
    rc, rep = _fuzz(
        server.url,
        server.proc.pid,
        tmp_path / "r.json",
        "--duration",
        "4",
        "--kinds",
        QUICK_KINDS,
        "--good-clients",
        "2",
        "--deflate",
        "--seed",
        "7",
    )
    assert rc == 0 and rep["ok"], rep
    good, srv = rep["good"], rep["server"]
    assert good["failures"] == {} and good["authenticated"] >= 2 and good["echoes"] > 10
    assert srv["alive"] and srv["pid_alive"] is True and srv["probe"] == "ok"
    assert srv["rss_before"] > 1 << 20 and srv["rss_after"] > 1 << 20
    assert srv["rss_max"] >= srv["rss_plateau"] > 0
    assert isinstance(srv["fds_before"], int) and srv["fds_after"] <= srv["fds_before"] + 2
    assert set(rep["kinds"]) <= set(QUICK_KINDS.split(","))
    assert sum(k["count"] for k in rep["kinds"].values()) == rep["cases"] > 20
    for kind in rep["kinds"].values():
        assert sum(kind[c] for c in CATEGORIES) == kind["count"] == sum(kind["details"].values())
    # The issue 11 inputs fixed in protocol/ get their answer (400; 101 or 400)...
    assert rep["kinds"]["bad_key"]["status"] == rep["kinds"]["bad_key"]["count"]
    assert rep["kinds"]["bad_utf8"]["details"] == {"close 1007": rep["kinds"]["bad_utf8"]["count"]}
    # ... and nothing in this run made the server write a traceback.
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_a_server_killed_mid_run_is_reported_dead(server: Server, tmp_path: Path) -> None:
    killer = threading.Timer(2.0, os.kill, (server.proc.pid, signal.SIGKILL))
    killer.start()
    try:
        rc, rep = _fuzz(
            server.url,
            server.proc.pid,
            tmp_path / "r.json",
            "--duration",
            "4",
            "--kinds",
            "bad_key,bad_utf8",
            "--good-clients",
            "2",
            "--settle",
            "1",
        )
    finally:
        killer.cancel()
    assert rc == 1 and not rep["ok"]
    srv = rep["server"]
    assert srv["alive"] is False and srv["pid_alive"] is False and srv["probe"] != "ok"
    assert rep["good"]["failures"], rep["good"]  # the good clients saw it go
    connect_failed = sum(k["connect_failed"] for k in rep["kinds"].values())
    assert connect_failed > 0  # mutated connections after the kill could not connect
    assert rep["stopped_early"]  # and the run stopped instead of burning its count
    assert srv["fds_after"] is None  # no process left to read


@pytest.mark.parametrize(
    "args",
    [
        ["--url", "ws://192.0.2.1:6001/ws"],  # not loopback
        ["--url", "wss://127.0.0.1:6001/ws"],
        ["--duration", "0"],
        ["--duration", "100000"],
        ["--count", "0"],
        ["--kinds", "bad_key,nonsense"],
        ["--concurrency", "100000"],
    ],
)
def test_bad_options_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["fuzz", "--url", "ws://127.0.0.1:1/ws", *args]) == 2
    assert capsys.readouterr().err.startswith("uvgate-bench: ")


def test_classification_helpers() -> None:
    two = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nHTTP/1.1 404 Not Found\r\n\r\n"
    assert _responses(two) == ([200, 404], len(two))
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x88\x02\x03\xe9"
    statuses, end = _responses(upgrade)
    assert statuses == [101] and _frames(upgrade[end:]) == (1001, 0)
    assert _frames(b"\x8a\x00\x81\x02hi") == (None, 2)  # a pong and a message, no close
    assert _frames(b"\x88\x00") == (1005, 0)
    assert set(KINDS) and all(weight > 0 for _, weight in KINDS.values())


def test_a_silent_server_is_dropped_and_a_quiet_one_times_out() -> None:
    async def main() -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
        import asyncio

        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.close()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # reads until we go away, answers nothing
            writer.close()

        dropper = await asyncio.start_server(drop, "127.0.0.1", 0)
        muter = await asyncio.start_server(mute, "127.0.0.1", 0)
        t_drop = Target("127.0.0.1", dropper.sockets[0].getsockname()[1], "/ws", SECRET)
        t_mute = Target("127.0.0.1", muter.sockets[0].getsockname()[1], "/ws", SECRET)
        pipelined = Plan("pipelining", [(0.0, b"GET / HTTP/1.1\r\n\r\n" * 3)], requests=3, wait=1)
        try:
            return (
                await run_plan(t_drop, Plan("x", [(0.0, b"GET / HTTP/1.1\r\n\r\n")], wait=1), None),
                await run_plan(t_mute, Plan("x", [(0.0, b"GET /")], wait=0.3), None),
                await run_plan(t_drop, pipelined, None),
            )
        finally:
            dropper.close()
            muter.close()

    dropped, quiet, pipelined = uvloop.run(main())
    assert dropped[0] == "dropped"
    assert quiet == ("timeout", "no answer")
    assert pipelined == ("dropped", "dropped after 0/3 answers")
