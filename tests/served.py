"""Programs the tests run as users do: in a subprocess, on a free port, stopped by pid.

``Program`` is any command, started once its stdout shows a line; ``Served`` is
``uvgate serve`` with its banner; ``LiveServer`` is ``uvgate serve`` whose log lines a
test can wait for as they come.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Program:
    """``cmd`` in a subprocess, returned once a stdout line contains ``until``.

    ``then`` more lines are read after that one (what the command prints once ready).
    ``out`` holds the stdout lines read so far (``banner`` the same as one string);
    ``stop()`` sends SIGTERM (SIGKILL after ``timeout``) and returns the exit status and
    the whole stderr.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        until: str = "listening on",
        then: int = 0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 20,
    ) -> None:
        self.proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.out: list[str] = []
        self.then = then
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out.append(line)
            if until in line:
                self.out += self.lines_after_ready(line)
                return
        _, err = self.stop()
        raise AssertionError(f"{list(cmd)} did not start: {self.banner} {err}")

    @property
    def banner(self) -> str:
        return "".join(self.out)

    def lines_after_ready(self, line: str) -> list[str]:
        """Lines the command prints right after its ready line, read before returning."""
        assert self.proc.stdout is not None
        return [self.proc.stdout.readline() for _ in range(self.then)]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Served(Program):
    """``uvgate serve --port <free port> *args``; ``banner`` is what it printed at start."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        super().__init__(
            [PYTHON, "-m", "gateway", "serve", "--port", str(self.port), *args], env=env
        )

    def lines_after_ready(self, line: str) -> list[str]:
        # With hmac one line follows: the demo-token warning (then three more lines
        # with the token) or how to issue tokens.
        if "hmac" not in line:
            return []
        assert self.proc.stdout is not None
        follow = [self.proc.stdout.readline()]
        if follow[0].startswith("WARNING"):
            follow += [self.proc.stdout.readline() for _ in range(3)]
        return follow


class LiveServer:
    """The gateway as users run it; ``lines`` is its stderr so far, read as it comes."""

    def __init__(
        self,
        *args: str,
        config: Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        ready: str = "listening on",
    ) -> None:
        self.port = port if port is not None else free_port()
        cmd = [PYTHON, "-m", "gateway", "serve", "--port", str(self.port), *args]
        if config is not None:
            cmd += ["--config", str(config)]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            self.wait_out(ready)
        except AssertionError:
            self.stop()
            raise

    def _read(self, stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _wait(self, into: list[str], pattern: str, start: int, timeout: float) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in into[start:]:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r}; stderr: {self.lines}; stdout: {self.out}"
                    )
                self._changed.wait(min(left, 0.1))

    def _alive(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def wait_log(self, pattern: str, *, start: int = 0, timeout: float = 15) -> str:
        """The first stderr line from index ``start`` matching ``pattern`` (waits for it)."""
        return self._wait(self.lines, pattern, start, timeout)

    def wait_out(self, pattern: str, timeout: float = 15) -> str:
        return self._wait(self.out, pattern, 0, timeout)

    def mark(self) -> int:
        """Index of the next stderr line (to wait only for lines logged after now)."""
        with self._changed:
            return len(self.lines)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def workers_reached(port: int, secret: str, workers: int, tries: int = 40) -> set[int]:
    """Authenticate up to ``tries`` native connections until each of ``workers`` has
    answered one (the kernel spreads them over SO_REUSEPORT); the workers that did."""
    import json

    from websockets.asyncio.client import connect

    from gateway.tokens import issue_token
    from protocol.ids import owner_of

    seen: set[int] = set()
    for i in range(tries):
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"type": "auth", "token": issue_token(secret, f"u{i}")}))
            ack = json.loads(await ws.recv())
            assert ack["type"] == "auth_ok", ack
            seen.add(owner_of(ack["id"])[1])
        if len(seen) == workers:
            break
    return seen
