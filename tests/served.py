"""``uvgate serve`` in a subprocess whose log lines a test can wait for (stopped by pid)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
