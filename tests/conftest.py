"""Shared fixtures: run every async test under asyncio and uvloop, and fail a test
on any exception the event loop reports as unhandled (the kind that hides bugs)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop

from tests.hotpath import check_hot_path, describe_hot_path
from tests.redis_server import RedisServer, running_redis


def pytest_report_header(config: pytest.Config) -> str:
    return describe_hot_path()


def pytest_configure(config: pytest.Config) -> None:
    problem = check_hot_path()
    if problem:
        pytest.exit(problem, returncode=2)


LOOPS = ("asyncio", "uvloop")


def _abort_open_transports() -> None:
    """A failed test may leave its clients' sockets open. Abort them before the loop
    closes: uvloop's ``loop.close()`` can otherwise wait in epoll for them, in C, where
    neither the test's failure nor SIGALRM is seen (the run hangs until pytest-timeout's
    thread ends it)."""
    for obj in gc.get_objects():
        uv_transport = type(obj).__module__ == "uvloop.loop" and hasattr(obj, "abort")
        if uv_transport or isinstance(obj, asyncio.BaseTransport):
            with contextlib.suppress(Exception):
                if not obj.is_closing():
                    obj.abort()


def run_checked(
    coro: Coroutine[Any, Any, Any], loop_kind: str = "uvloop", timeout: float = 60
) -> Any:
    """Run ``coro`` on a fresh loop of ``loop_kind``; fail on unhandled loop exceptions."""
    errors: list[dict[str, Any]] = []

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        try:
            return await asyncio.wait_for(coro, timeout)
        except BaseException:
            _abort_open_transports()
            raise
        finally:
            # Let transports finish closing so their errors surface here.
            await asyncio.sleep(0)

    result = uvloop.run(main()) if loop_kind == "uvloop" else asyncio.run(main())
    if errors:
        details = "; ".join(f"{ctx.get('message')}: {ctx.get('exception')!r}" for ctx in errors)
        pytest.fail(f"unhandled event-loop exception(s): {details}")
    return result


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def arun(loop_kind: str) -> Callable[..., Any]:
    """``arun(coro)`` runs a coroutine under the parametrized loop (asyncio and uvloop)."""

    def runner(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return run_checked(coro, loop_kind, timeout)

    return runner


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the session, stopped by pid (each test its own key prefix)."""
    with running_redis() as server:
        yield server
