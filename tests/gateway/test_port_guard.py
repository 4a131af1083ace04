"""One uvgate per address: a second instance, or a port in use, is one line and exit 1.

Seen before: a second ``uvgate serve`` on a served port silently joined it through
SO_REUSEPORT (two secrets, half the clients refused), and ``--workers 2`` on a port in use
printed 144 lines and 6 tracebacks.
"""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap

import pytest
from websockets.asyncio.client import connect

from gateway.tokens import issue_token
from tests.conftest import run_checked
from tests.served import PYTHON, LiveServer, free_port, workers_reached


def serve(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "gateway", "serve", "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == "", result
    return lines[0]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (["--workers", "2", "--no-pusher"], ["--workers", "2", "--no-pusher"]),
        (["--workers", "2", "--no-pusher"], []),
        ([], ["--workers", "2", "--no-pusher"]),
        ([], []),
    ],
    ids=["2-then-2", "2-then-1", "1-then-2", "1-then-1"],
)
def test_a_second_instance_on_a_served_port_refuses_to_start(first, second):
    with LiveServer(*first, "--secret", "first") as running:
        result = serve(running.port, *second, "--secret", "second")
        assert result.returncode == 1
        line = one_line(result)
        assert line == (
            f"uvgate: cannot serve: cannot listen on 127.0.0.1:{running.port}: another "
            f"uvgate (pid {running.proc.pid}) already serves it (stop it first, or choose "
            "another port)"
        )

        # The first instance is alone on its port: every connection gets its secret.
        async def main():
            for i in range(6):
                async with connect(f"ws://127.0.0.1:{running.port}/ws") as ws:
                    token = issue_token("first", f"u{i}")
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                    assert json.loads(await ws.recv())["type"] == "auth_ok"

        run_checked(main())


def test_an_overlapping_address_is_caught_by_the_probe():
    with LiveServer("--host", "0.0.0.0", "--no-pusher", "--workers", "2") as running:
        result = serve(running.port, "--host", "127.0.0.1")
        assert result.returncode == 1
        assert one_line(result).endswith(
            f"cannot listen on 127.0.0.1:{running.port}: the address is already in use "
            "by another program"
        )


@pytest.mark.parametrize("workers", ["1", "2", "4"])
def test_a_port_in_use_is_one_line_whatever_the_worker_count(workers: str):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = serve(port, "--workers", workers, "--no-pusher")
    assert result.returncode == 1
    assert one_line(result) == (
        f"uvgate: cannot serve: cannot listen on 127.0.0.1:{port}: "
        "the address is already in use by another program"
    )


def test_workers_that_lose_the_race_for_the_port_are_one_line():
    # The guard's check and the workers' bind are two steps: a program taking the port in
    # between is rare, but its failure must be one line too. Run the supervisor without
    # the guard on a port this test holds: every worker fails to bind, and says so once.
    port = free_port()
    script = textwrap.dedent(
        f"""
        import sys
        from gateway.config import Config
        from gateway.portguard import ListenError
        from gateway.workers import _Supervisor
        config = Config(port={port}, workers=3, pusher=False, secret="s")
        try:
            _Supervisor(config, None, None).run()
        except ListenError as exc:
            print("refused:", exc, file=sys.stderr)
            sys.exit(1)
        """
    )
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert one_line(result).startswith(
        f"refused: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_the_workers_of_one_instance_still_share_the_port():
    with LiveServer("--workers", "2", "--no-pusher", "--secret", "w") as running:

        async def main():
            seen = await workers_reached(running.port, "w", 2)
            assert seen == {0, 1}, f"connections reached workers {seen} only"

        run_checked(main())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_cluster_that_cannot_start_is_one_line_too(workers: str):
    # Nothing listens on this port: Redis is unreachable.
    redis = f"redis://127.0.0.1:{free_port()}/0"
    result = serve(free_port(), "--workers", workers, "--no-pusher", "--redis", redis)
    assert result.returncode == 1
    assert one_line(result) == f"uvgate: cannot serve: cannot reach Redis at {redis}"


def test_the_guard_in_process():
    import errno

    from gateway.portguard import ListenError, claim, describe_bind_error

    port = free_port()
    with claim("127.0.0.1", [port, None, 0]) as guard:
        assert len(guard.locks) == 1
        with pytest.raises(ListenError, match=r"another uvgate \(pid \d+\) already serves it"):
            claim("127.0.0.1", [port])
    # Released: the address can be claimed again.
    claim("127.0.0.1", [port]).release()
    with pytest.raises(ListenError, match=r"cannot resolve 'no-such-host\.invalid'"):
        claim("no-such-host.invalid", [port])
    error = OSError(errno.EADDRINUSE, "Address already in use")
    assert describe_bind_error("::1", 7, error) == "cannot listen on ::1:7: Address already in use"
