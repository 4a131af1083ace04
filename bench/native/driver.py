"""A generator worker that runs the native ``wsgen`` and relays the parent's control script.

The parent (bench/runner.py) talks to every worker the same way (``ready`` -> ``go`` ->
``done``, progress ``p``); this worker translates that to wsgen's line protocol on its
stdin/stdout and turns wsgen's result (counters in JSON, raw latency samples in binary
files) into the dict a Python scenario returns, so ``assemble`` cannot tell them apart.
Relaying costs a few wake-ups per second: wsgen does the work.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import tempfile
from array import array
from multiprocessing.connection import Connection
from typing import Any

from ..config import RunConfig, share
from ..procstat import self_cpu_seconds
from ..tokens import issue_token

# Distinct users per worker, as bench/conn.py (u{worker}-{index % 1000}).
USERS_PER_WORKER = 1000
SAMPLE_NAMES = ("handshake_ms", "auth_ms", "total_ms", "rtt_ms", "delivery_ms")


def resolve(host: str) -> str:
    """wsgen takes an IP literal: resolve a name (loopback was checked by the parent)."""
    h = host.strip("[]")
    info = socket.getaddrinfo(h, None, proto=socket.IPPROTO_TCP)
    return str(info[0][4][0])


def wsgen_args(binary: str, cfg: RunConfig, index: int, auth: str, samples: str) -> list[str]:
    """The command line of worker ``index``: its share of the run, as the Python scenarios."""
    procs = cfg.procs
    args = [binary, "--mode", cfg.scenario, "--host", resolve(cfg.host), "--port", str(cfg.port)]
    args += ["--path", cfg.ws_path, "--connect-timeout", str(cfg.connect_timeout)]
    args += ["--auth", auth, "--samples", samples, "--worker", str(index)]
    if cfg.scenario == "connect":
        args += ["--count", str(share(cfg.connections, index, procs))]
        args += ["--concurrency", str(max(1, share(cfg.concurrency, index, procs)))]
    elif cfg.scenario == "hold":
        args += ["--count", str(share(cfg.connections, index, procs))]
        args += ["--concurrency", str(max(1, cfg.concurrency))]
        args += ["--rate", str(cfg.rate / procs if cfg.rate > 0 else 0.0)]
    elif cfg.scenario == "echo":
        args += [
            "--count",
            str(share(cfg.concurrency, index, procs)),
            "--duration",
            str(cfg.duration),
        ]
        args += [
            "--size",
            str(cfg.size),
            "--depth",
            str(cfg.depth),
            "--binary",
            str(int(cfg.binary)),
        ]
    elif cfg.scenario == "fanout":
        args += ["--count", str(share(cfg.subscribers, index, procs)), "--group", cfg.group]
        args += ["--duration", str(cfg.duration), "--window", str(cfg.window)]
        args += ["--publish-rate", str(cfg.publish_rate), "--publisher", str(int(index == 0))]
    for src in cfg.sources:
        args += ["--source", resolve(src)]
    if cfg.busy_poll:
        args += ["--busy-poll", "1"]
    return args


def write_auth_file(path: str, cfg: RunConfig, index: int, count: int) -> None:
    """One first message per user: the tokens wsgen sends, masked once at its start."""
    with open(path, "w") as f:
        for i in range(max(1, min(USERS_PER_WORKER, count))):
            token = issue_token(cfg.secret, f"u{index}-{i}", ttl=3600)
            f.write(json.dumps({"type": "auth", "token": token}, separators=(",", ":")) + "\n")


def _load_samples(info: dict[str, Any]) -> dict[str, Any]:
    values = array("d")
    with open(info["file"], "rb") as f:
        values.frombytes(f.read())
    return {"values": values.tolist(), "max": info["max"], "count": info["count"]}


def to_result(raw: dict[str, Any]) -> dict[str, Any]:
    """wsgen's ``done`` JSON as the dict of ``scenarios.Base.result`` (plus extras)."""
    res = {k: v for k, v in raw.items() if k not in ("latency", "cpu_s", "wall_s")}
    res["latency"] = {k: _load_samples(v) for k, v in raw["latency"].items()}
    return res


def run_native_worker(conn: Connection, cfg: RunConfig, index: int, binary: str) -> dict[str, Any]:
    """Run one wsgen for worker ``index``; relays control; returns the worker result."""
    with tempfile.TemporaryDirectory(prefix="wsgen-") as tmp:
        auth = os.path.join(tmp, "auth.txt")
        n = cfg.subscribers if cfg.scenario == "fanout" else cfg.connections
        write_auth_file(auth, cfg, index, share(max(n, cfg.concurrency), index, cfg.procs))
        proc = subprocess.Popen(
            wsgen_args(binary, cfg, index, auth, os.path.join(tmp, "samples")),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            return _relay(conn, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


def _send_line(proc: subprocess.Popen[bytes], line: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def _relay(conn: Connection, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(conn.fileno(), selectors.EVENT_READ, "ctl")
    sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "gen")
    pending = b""
    cpu_go = 0.0
    try:
        while True:
            for key, _ in sel.select(1.0):
                if key.data == "ctl":
                    try:
                        kind, data = conn.recv()
                    except (EOFError, OSError):
                        kind, data = "abort", None  # the parent is gone: stop
                    if kind == "go":
                        cpu_go = self_cpu_seconds()
                        t0 = data.get("t0_ns", 0) if isinstance(data, dict) else 0
                        _send_line(proc, f"go {t0}")
                    elif kind in ("stop", "abort"):
                        _send_line(proc, kind)
                        if kind == "abort":
                            raise RuntimeError("aborted by the parent")
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    err = proc.stderr.read().decode(errors="replace").strip()
                    proc.wait(5)
                    raise RuntimeError(
                        f"native generator exited with status {proc.returncode}"
                        + (f": {err[-300:]}" if err else "")
                    )
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    done = _on_line(conn, line.decode())
                    if done is not None:
                        done["cpu_s"] += self_cpu_seconds() - cpu_go
                        return done
    finally:
        sel.close()


def _on_line(conn: Connection, line: str) -> dict[str, Any] | None:
    word, _, rest = line.partition(" ")
    if word == "p":
        ok, alive, fail, msgs, deliv = (int(x) for x in rest.split())
        conn.send(("p", {"ok": ok, "alive": alive, "fail": fail, "msgs": msgs, "deliv": deliv}))
    elif word == "ready":
        conn.send(("ready", None))
    elif word == "ramped":
        ramp_s, held = rest.split()
        conn.send(("ramped", {"ramp_s": float(ramp_s), "alive": int(held)}))
    elif word == "done":
        raw = json.loads(rest)
        res = to_result(raw)
        res["cpu_s"] = float(raw["cpu_s"])
        return res
    elif word == "error":
        raise RuntimeError(rest)
    return None
