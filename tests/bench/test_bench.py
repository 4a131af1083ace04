"""The load generator against a real peer server (the raw probe) with tiny counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bench import pusher
from bench.cli import main as bench_main
from bench.config import RunConfig, share
from bench.guard import RemoteTargetError, check_target, is_loopback
from bench.runner import run
from bench.servers import PEERS, free_port, wait_port
from bench.stats import Samples, merge_summaries, percentile, summarize
from bench.tokens import issue_token
from bench.wsclient import Masker, parse_response_head, upgrade_request

SECRET = "test-bench-secret"


@pytest.fixture(scope="module")
def probe_factory():
    procs: list[subprocess.Popen[bytes]] = []

    def start(app: str) -> tuple[int, int]:
        port = free_port()
        p = subprocess.Popen(
            [
                sys.executable,
                os.path.join(PEERS, "raw_probe.py"),
                "--port",
                str(port),
                "--secret",
                SECRET,
                "--app",
                app,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(p)
        wait_port("127.0.0.1", port, p, 15)
        return port, p.pid

    yield start
    for p in procs:
        p.terminate()
        p.wait(5)


def _cfg(scenario: str, port: int, pid: int, **kw: object) -> RunConfig:
    # The Python generator here; tests/bench/test_native.py runs the same jobs natively.
    cfg = RunConfig(
        scenario=scenario,
        port=port,
        secret=SECRET,
        server_pids=[pid],
        timeout=30,
        generator="python",
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_connect_against_probe(probe_factory, tmp_path):
    port, pid = probe_factory("echo")
    out = tmp_path / "connect.json"
    rc = bench_main(
        [
            "connect",
            "--url",
            f"ws://127.0.0.1:{port}/ws",
            "--secret",
            SECRET,
            "-n",
            "200",
            "-c",
            "10",
            "--server-pid",
            str(pid),
            "--json",
            str(out),
            "--plot",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["ok"] == 200 and res["failures"] == {}
    assert res["connections_per_s"] > 0
    for name in ("handshake_ms", "auth_ms", "total_ms"):
        s = res["latency_ms"][name]
        assert s["n"] == 200 and 0 < s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert res["server"]["cpu_us_per_connection"] is not None
    assert res["generator"]["cpu_s"] > 0
    assert list(tmp_path.glob("*.png"))


def test_wrong_secret_is_counted_as_auth_failure(probe_factory):
    port, pid = probe_factory("echo")
    res = run(_cfg("connect", port, pid, connections=5, concurrency=5, secret="wrong"), False)
    assert res["ok"] == 0
    assert res["failures"] == {"auth_rejected_4401": 5}


def test_echo_against_probe(probe_factory):
    port, pid = probe_factory("echo")
    res = run(_cfg("echo", port, pid, concurrency=4, duration=0.5, depth=2, procs=2), False)
    assert res["connections"] == 4 and res["failures"] == {}
    assert res["messages"] > 100 and res["messages_per_s"] > 0
    assert res["latency_ms"]["rtt_ms"]["p50"] > 0
    assert res["server"]["cpu_us_per_message"] is not None
    assert res["timeline"]
    res = run(_cfg("echo", port, pid, concurrency=2, duration=0.3, size=300, binary=True), False)
    assert res["failures"] == {} and res["messages"] > 10


def test_fanout_against_probe(probe_factory):
    port, pid = probe_factory("chat")
    res = run(_cfg("fanout", port, pid, subscribers=20, duration=0.5, procs=2), False)
    assert res["failures"] == {}
    assert res["published"] > 0
    assert res["deliveries"] == res["expected_deliveries"] == res["published"] * 20
    assert res["deliveries_per_s"] > 0 and res["latency_ms"]["delivery_ms"]["p50"] > 0


def test_hold_against_probe(probe_factory):
    port, pid = probe_factory("echo")
    res = run(
        _cfg(
            "hold",
            port,
            pid,
            connections=300,
            rate=3000,
            hold_s=0.2,
            sources=["127.0.0.2", "127.0.0.3"],
        ),
        False,
    )
    assert res["held"] == 300 and res["failures"] == {}
    assert res["server_rss"]["per_connection"] is not None


def test_loopback_guard():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
    for host in ("10.0.0.1", "192.168.1.1", "8.8.8.8"):
        assert not is_loopback(host)
    with pytest.raises(RemoteTargetError):
        check_target("10.0.0.1")
    check_target("10.0.0.1", allow_remote=True)  # explicit opt-in only
    with pytest.raises(RemoteTargetError):
        run(RunConfig(scenario="connect", host="10.0.0.1", connections=1), False)
    assert bench_main(["connect", "--url", "ws://10.0.0.1:8765/ws", "-n", "1", "--quiet"]) == 2
    with pytest.raises(RemoteTargetError):
        run(RunConfig(scenario="connect", sources=["10.0.0.2"], connections=1), False)


def test_limits_are_enforced():
    with pytest.raises(ValueError):
        RunConfig(scenario="connect", connections=10**7).validate()
    with pytest.raises(ValueError):
        RunConfig(scenario="echo", duration=10**6).validate()
    with pytest.raises(ValueError):
        RunConfig(scenario="echo", protocol="pusher").validate()


def test_tokens_equal_gateway_tokens():
    gateway_tokens = pytest.importorskip("gateway.tokens")
    now = time.time()
    for sub in ("alice", "u0-1", "zoë"):
        ours = issue_token(SECRET, sub, 120, now=now)
        assert ours == gateway_tokens.issue_token(SECRET, sub, 120, now=now)
        assert gateway_tokens.verify_token(SECRET, ours)["sub"] == sub


def test_percentiles():
    vals = list(range(1, 101))
    assert percentile(vals, 0) == 1 and percentile(vals, 100) == 100
    assert percentile(vals, 50) == pytest.approx(50.5)
    assert percentile(vals, 90) == pytest.approx(90.1)
    assert percentile(vals, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    s = summarize([3.0, 1.0, 2.0])
    assert s["n"] == 3 and s["p50"] == 2.0 and s["max"] == 3.0 and s["min"] == 1.0
    with pytest.raises(ValueError):
        percentile(vals, 101)
    merged = merge_summaries(
        [
            {"values": [1.0, 2.0], "max": 2.0, "count": 2},
            {"values": [3.0, 4.0], "max": 9.0, "count": 5},
        ]
    )
    assert merged["p50"] == 2.5 and merged["max"] == 9.0 and merged["count"] == 7


def test_samples_stay_bounded(monkeypatch):
    monkeypatch.setattr("bench.stats.MAX_SAMPLES", 100)
    s = Samples()
    for i in range(10_000):
        s.add(float(i))
    assert s.count == 10_000 and s.max == 9999.0
    assert len(s.values) < 100
    assert percentile(sorted(s.to_list()), 50) == pytest.approx(5000, rel=0.05)


def test_share_splits_exactly():
    assert [share(10, i, 3) for i in range(3)] == [4, 3, 3]
    assert sum(share(100_001, i, 7) for i in range(7)) == 100_001


def test_client_framing():
    m = Masker(b"\x01\x02\x03\x04")
    frame = m.frame(1, b"hello")
    assert frame[:2] == b"\x81\x85" and frame[2:6] == b"\x01\x02\x03\x04"
    unmasked = bytes(b ^ frame[2 + (i % 4) + 0] for i, b in enumerate(frame[6:]))
    assert unmasked == b"hello"
    payload = bytes(range(256)) * 2  # beyond the per-connection mask cache
    f2 = m.frame(2, payload)
    assert f2[1] == 0xFE and int.from_bytes(f2[2:4], "big") == 512
    assert bytes(b ^ f2[4 + (i % 4)] for i, b in enumerate(f2[8:])) == payload
    big = m.frame(2, b"x" * 70_000)
    assert big[1] == 0xFF and int.from_bytes(big[2:10], "big") == 70_000
    req = upgrade_request("127.0.0.1", 80, "/ws", b"0" * 16)
    assert req.startswith(b"GET /ws HTTP/1.1\r\n") and req.endswith(b"\r\n\r\n")
    head = b"HTTP/1.1 101 Switching\r\nA: b\r\n\r\n"
    assert parse_response_head(head + b"rest") == (101, len(head))
    assert parse_response_head(b"HTTP/1.1 101 Switching\r\n") is None


def test_pusher_signatures_match_the_worked_example():
    params = {
        "auth_key": "278d425bdf160c739803",
        "auth_timestamp": "1353088179",
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
    }
    assert pusher.sign_query("POST", "/apps/3/events", params, "7ad3773142a6692b25b8") == (
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    )
    target = pusher.signed_request("POST", "/apps/3/events", b"{}", "k", "s", now=1)
    assert "auth_signature=" in target and "body_md5=99914b932bd37a50b983c5e7c90ae93b" in target
    auth = pusher.channel_auth("key", "secret", "1.2", "private-x")
    assert auth.startswith("key:") and len(auth) == 4 + 64


def test_pusher_connect_and_fanout_against_probe(probe_factory):
    port, pid = probe_factory("pusher")
    res = run(_cfg("connect", port, pid, protocol="pusher", connections=50, concurrency=5), False)
    assert res["ok"] == 50 and res["failures"] == {}
    assert res["target"].endswith("/app/app-key?protocol=7&client=js&version=8.4.0&flash=false")
    res = run(_cfg("fanout", port, pid, protocol="pusher", subscribers=10, duration=0.4), False)
    assert res["failures"] == {} and res["published"] > 0
    assert res["deliveries"] == res["expected_deliveries"] == res["published"] * 10
    bad = run(
        _cfg(
            "connect",
            port,
            pid,
            protocol="pusher",
            connections=3,
            concurrency=3,
            app_secret="wrong",
        ),
        False,
    )
    assert bad["ok"] == 0 and bad["failures"] == {"auth_rejected_401": 3}


def test_failures_are_classified():
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts TCP (backlog) but never answers the upgrade
    try:
        port = silent.getsockname()[1]
        res = run(
            RunConfig(
                scenario="connect",
                port=port,
                connections=3,
                concurrency=3,
                connect_timeout=0.3,
                timeout=10,
                generator="python",
            ),
            False,
        )
        assert res["ok"] == 0 and res["failures"] == {"handshake_timeout": 3}
    finally:
        silent.close()
    res = run(
        RunConfig(
            scenario="connect",
            port=free_port(),
            connections=2,
            concurrency=1,
            timeout=10,
            generator="python",
        ),
        False,
    )
    assert res["failures"] == {"connect_refused": 2}


def test_http_client_reads_chunked_and_length_bodies():
    h = pusher.HTTPClient("127.0.0.1", 80)
    got: list[tuple[int, bytes]] = []

    class Waiter:
        def done(self) -> bool:
            return False

        def set_result(self, r: tuple[int, bytes]) -> None:
            got.append(r)

    h._waiter = Waiter()  # type: ignore[assignment]
    h.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
    assert not got
    h.data_received(b"0\r\n\r\nHTTP/1.1 401 No\r\nContent-Length: 3\r\n\r\nab")
    assert got == [(200, b"{}")]
    h.data_received(b"c")
    assert got[-1] == (401, b"abc")
