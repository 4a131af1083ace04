"""The native load generator (bench/native), its Python fallback, exit status and verdicts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from bench.bottleneck import Inputs, classify
from bench.cli import build_parser, failure_verdict
from bench.cli import main as bench_main
from bench.compare_report import bound_summary
from bench.config import RunConfig
from bench.native import NativeUnavailable, build_generator, find_compiler
from bench.runner import run
from bench.servers import PEERS, REPO_DIR, SERVERS, free_port, wait_port

SECRET = "test-native-secret"
# Without a compiler the native generator cannot exist; the fallback test still runs.
needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc, gcc, clang)")


def _start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(cmd, cwd=REPO_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port, p, 30)
    except BaseException:
        p.kill()
        p.wait(5)
        raise
    return p


def _stop(p: subprocess.Popen[bytes]) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


@pytest.fixture(scope="module")
def peer():
    procs: list[subprocess.Popen[bytes]] = []

    def start(script: str, app: str) -> tuple[int, int]:
        port = free_port()
        cmd = [sys.executable, os.path.join(PEERS, script), "--port", str(port)]
        p = _start([*cmd, "--secret", SECRET, "--app", app], port)
        procs.append(p)
        return port, p.pid

    yield start
    for p in procs:
        _stop(p)


def _cfg(scenario: str, port: int, pid: int | None = None, **kw: object) -> RunConfig:
    cfg = RunConfig(scenario=scenario, port=port, secret=SECRET, timeout=60, generator="native")
    cfg.server_pids = [pid] if pid else []
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@needs_cc
def test_native_generator_builds_once_into_a_cache(tmp_path):
    path = build_generator(directory=str(tmp_path))
    assert os.access(path, os.X_OK) and path.startswith(str(tmp_path))
    mtime = os.stat(path).st_mtime_ns
    assert build_generator(directory=str(tmp_path)) == path
    assert os.stat(path).st_mtime_ns == mtime  # cached, not rebuilt
    # Bad options: one line on stderr, exit status 2.
    r = subprocess.run([path, "--mode", "nope", "--auth", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown --mode" in r.stderr
    # Run by hand with no driver on stdin, it would wait for "go" forever: it says so and stops.
    auth = tmp_path / "auth.txt"
    auth.write_text("{}\n")
    with open(os.devnull) as null:
        args = [path, "--mode", "connect", "--port", "1", "--count", "1", "--auth", str(auth)]
        r = subprocess.run(args, stdin=null, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "must be the driver's pipe" in r.stderr


@needs_cc
def test_native_connect_counts_against_the_raw_probe(peer):
    port, pid = peer("raw_probe.py", "echo")
    res = run(_cfg("connect", port, pid, connections=400, concurrency=25, procs=2), False)
    assert res["generator"]["kind"] == "native" and res["generator"]["procs"] == 2
    assert res["ok"] == 400 and res["failures"] == {}
    for name in ("handshake_ms", "auth_ms", "total_ms"):
        s = res["latency_ms"][name]
        assert s["count"] == 400 and 0 < s["p50"] <= s["p99"] <= s["max"]
    assert res["server"]["cpu_us_per_connection"] > 0 and res["generator"]["cpu_s"] > 0
    assert res["bottleneck"]["side"] in (
        "server-bound",
        "generator-bound",
        "host-busy",
        "unsaturated",
    )
    bad = run(_cfg("connect", port, pid, connections=7, concurrency=3, secret="wrong"), False)
    assert bad["ok"] == 0 and bad["failures"] == {"auth_rejected_4401": 7}


@needs_cc
def test_native_connect_against_uvgate_serve():
    port = free_port()
    cmd = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    p = _start([*cmd, "--secret", SECRET], port)
    try:
        res = run(_cfg("connect", port, p.pid, connections=300, concurrency=20), False)
    finally:
        _stop(p)
    assert res["generator"]["kind"] == "native"
    assert res["ok"] == 300 and res["failures"] == {}
    assert res["latency_ms"]["total_ms"]["count"] == 300
    assert res["server"]["cpu_us_per_connection"] > 0


@needs_cc
def test_native_echo_fanout_hold_against_the_raw_probe(peer):
    port, pid = peer("raw_probe.py", "echo")
    res = run(_cfg("echo", port, pid, concurrency=6, duration=0.5, depth=3, procs=2), False)
    assert res["generator"]["kind"] == "native"
    assert res["connections"] == 6 and res["failures"] == {} and res["messages"] > 100
    assert res["latency_ms"]["rtt_ms"]["count"] >= res["messages"]
    res = run(_cfg("echo", port, pid, concurrency=2, duration=0.3, size=70_000, binary=True), False)
    assert res["failures"] == {} and res["messages"] > 5
    res = run(_cfg("hold", port, pid, connections=300, rate=3000, hold_s=0.2), False)
    assert res["held"] == 300 and res["failures"] == {}
    assert res["server_rss"]["per_connection"] is not None
    port, pid = peer("raw_probe.py", "chat")
    res = run(_cfg("fanout", port, pid, subscribers=20, duration=0.5, procs=2), False)
    assert res["failures"] == {} and res["subscribers"] == 20 and res["published"] > 0
    assert res["deliveries"] == res["expected_deliveries"] == res["published"] * 20
    assert res["latency_ms"]["delivery_ms"]["p50"] > 0
    res = run(_cfg("fanout", port, pid, subscribers=5, duration=0.5, publish_rate=200.0), False)
    assert res["failures"] == {} and 50 <= res["published"] <= 110
    assert res["deliveries"] == res["published"] * 5


@needs_cc
def test_busy_poll_spins_on_its_own_cpu_and_is_not_counted_as_load(peer):
    port, pid = peer("raw_probe.py", "echo")
    cpu = max(os.sched_getaffinity(0))
    cfg = _cfg("connect", port, pid, connections=300, concurrency=10, cpus=[cpu], busy_poll=True)
    res = run(cfg, False)
    assert res["ok"] == 300 and res["failures"] == {}
    gen = res["generator"]
    # Ten connections in flight against a lean server leave the generator polling for
    # replies: that time is reported and taken out of its load and its cost per unit.
    assert 0 < gen["busy_poll_s"] < gen["cpu_s"]
    assert gen["util_cores"] * res["wall_s"] == pytest.approx(gen["cpu_s"] - gen["busy_poll_s"])
    assert gen["cpu_us_per_connection"] == pytest.approx(
        (gen["cpu_s"] - gen["busy_poll_s"]) / 300 * 1e6
    )
    plain = run(_cfg("connect", port, pid, connections=50, concurrency=5), False)
    assert plain["generator"]["busy_poll_s"] == 0  # wsgen sleeps in epoll_wait by default
    with pytest.raises(ValueError, match="--busy-poll needs --cpus"):
        run(_cfg("connect", port, pid, connections=5, busy_poll=True), False)


@needs_cc
def test_native_failures_are_classified():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts TCP (backlog) but never answers the upgrade
    try:
        port = silent.getsockname()[1]
        res = run(_cfg("connect", port, connections=3, concurrency=3, connect_timeout=0.3), False)
        assert res["ok"] == 0 and res["failures"] == {"handshake_timeout": 3}
    finally:
        silent.close()
    res = run(_cfg("connect", free_port(), connections=4, concurrency=2), False)
    assert res["failures"] == {"connect_refused": 4}


@needs_cc
def test_socketify_peer_does_the_same_job(peer):
    why = SERVERS["socketify"].check()
    if why:
        pytest.skip(why)
    port, pid = peer("socketify_server.py", "echo")
    res = run(_cfg("connect", port, pid, connections=200, concurrency=20), False)
    assert res["ok"] == 200 and res["failures"] == {}
    bad = run(_cfg("connect", port, pid, connections=3, concurrency=3, secret="wrong"), False)
    assert bad["failures"] == {"auth_rejected_4401": 3}
    res = run(_cfg("echo", port, pid, concurrency=4, duration=0.3), False)
    assert res["failures"] == {} and res["messages"] > 10
    port, pid = peer("socketify_server.py", "chat")
    res = run(_cfg("fanout", port, pid, subscribers=10, duration=0.4), False)
    assert res["failures"] == {} and res["published"] > 0
    assert res["deliveries"] == res["published"] * 10


def test_python_fallback_without_a_compiler(peer, monkeypatch, capsys):
    port, pid = peer("raw_probe.py", "echo")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(NativeUnavailable):
        build_generator()
    res = run(_cfg("connect", port, pid, connections=50, concurrency=5, generator="auto"), False)
    assert res["generator"]["kind"] == "python" and res["ok"] == 50
    assert any("no C compiler" in n for n in res["notes"])
    with pytest.raises(ValueError, match="--generator native is not available"):
        run(_cfg("connect", port, pid, connections=5), False)
    url = f"ws://127.0.0.1:{port}/ws"
    assert bench_main(["connect", "--url", url, "-n", "1", "--generator", "native"]) == 2
    assert "no C compiler" in capsys.readouterr().err


@pytest.mark.parametrize("generator", [pytest.param("native", marks=needs_cc), "python"])
def test_exit_status_when_every_connection_fails(generator, capsys):
    url = f"ws://127.0.0.1:{free_port()}/ws"
    rc = bench_main(
        ["connect", "--url", url, "-n", "5", "-c", "2", "--quiet", "--generator", generator]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "every connection failed (connect_refused=5)" in err and url in err


def test_failure_verdict_rule():
    base = {"target": "ws://t", "unit": "connection", "units": 10}
    assert failure_verdict({**base, "ok": 10, "failures": {}}) is None
    assert failure_verdict({**base, "ok": 10, "failures": {"auth_rejected_4401": 10}}) is None
    most = failure_verdict({**base, "ok": 4, "failures": {"connect_refused": 6}})
    assert most is not None and most.startswith("most connections failed")
    none = failure_verdict({**base, "ok": 0, "units": 0, "failures": {}})
    assert none is not None and none.startswith("every connection failed")
    echo = failure_verdict({**base, "ok": 5, "units": 0, "unit": "message", "failures": {}})
    assert echo == "no message was measured (5 connections ok)"


def test_default_url_is_uvgate_default_port():
    assert build_parser().parse_args(["connect"]).url == "ws://127.0.0.1:6001/ws"
    assert RunConfig().port == 6001


@needs_cc
def test_progress_line_ends_at_100_percent(peer, capsys):
    port, pid = peer("raw_probe.py", "echo")
    run(_cfg("connect", port, pid, connections=20, concurrency=5), True)
    out = capsys.readouterr().out
    assert "100.0%" in out.rsplit("\r", 1)[-1] and "ok=20" in out.rsplit("\r", 1)[-1]


# Inputs recorded on this 2-core machine (server on CPU 0, generator on CPU 1).
PY_GEN_VS_PROBE = Inputs(0.99, 1, 0.55, 1, 0.70, 0.10, 1.0, 0.31, 0.0)
NATIVE_VS_PROBE = Inputs(0.95, 1, 0.92, 1, 1.0, 0.23, 1.0, 0.38, 0.0)
OTHERS_ON_SERVER_CPU = Inputs(0.53, 1, 0.30, 1, 0.96, 0.07, 0.91, 0.25, 0.19)


def test_bottleneck_verdicts_from_recorded_inputs():
    assert classify(PY_GEN_VS_PROBE)["side"] == "generator-bound"
    v = classify(NATIVE_VS_PROBE)
    assert v["side"] == "server-bound"  # both cores full: the rate is the server's capacity
    assert "server 100% of 1 core(s)" in v["reason"] and "processes 92% / 95%" in v["reason"]
    v = classify(OTHERS_ON_SERVER_CPU)
    # CPU 0 was 96% busy but the probe and interrupts explain 37%: someone else had it.
    assert v["side"] == "host-busy" and v["others_cores"] == pytest.approx(0.72, abs=0.01)
    # uvgate, native generator: CPU 0 96% busy, 82% of it the server and its interrupts.
    v = classify(Inputs(0.47, 1, 0.68, 1, 0.96, 0.14, 0.65, 0.18, 0.14))
    assert v["side"] == "server-bound"
    # The same CPU, but with 0.4 core of it taken by someone else.
    assert classify(Inputs(0.47, 1, 0.45, 1, 0.96, 0.11, 0.65, 0.18, 0.0))["side"] == "host-busy"
    assert classify(Inputs(0.3, 1, 0.2, 1, others_cores=0.05))["side"] == "unsaturated"
    assert classify(Inputs(0.3, 1, 0.2, 1, others_cores=0.6))["side"] == "host-busy"
    assert classify(Inputs(0.5, 1, 0.95, 1))["side"] == "server-bound"  # not pinned
    assert classify(Inputs(0.9, 2, 1.7, 2))["side"] == "server-bound"  # two workers
    assert classify(Inputs(0.9, 1))["side"] == "generator-bound"  # no --server-pid
    assert classify(Inputs(0.5, 1))["side"] == "unknown"


def test_compare_says_which_side_bound_each_run():
    def r(side: str, kind: str = "native") -> dict[str, object]:
        return {"bottleneck": {"side": side}, "generator": {"kind": kind}}

    assert bound_summary([r("server-bound")] * 3) == "server (native gen)"
    mixed = [r("server-bound"), r("generator-bound", "python"), r("server-bound")]
    assert bound_summary(mixed) == "server 2, generator 1 (native/python gen)"
    assert bound_summary([]) == "-"
