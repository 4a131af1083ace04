"""Deadlines, the failure limiter and read flow control, without sockets or a loop."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.connstate import CLOSED, OPEN, State
from gateway.deadlines import DeadlineWheel
from gateway.flow import AUTH, BACKLOG, HTTP, ReadFlow
from gateway.ratelimit import FailureLimiter
from gateway.timers import _expire


class Item:
    def __init__(self, name: str, fired: list[str]) -> None:
        self.name = name
        self.fired = fired
        self.deadline_slot = 0
        self.expires = 0.0

    def on_deadline(self) -> None:
        self.fired.append(self.name)


def test_wheel_fires_in_order_within_one_tick() -> None:
    fired: list[str] = []
    wheel = DeadlineWheel(0.1)
    a, b, c = Item("a", fired), Item("b", fired), Item("c", fired)
    wheel.add(b, 1.05)
    wheel.add(a, 0.5)
    wheel.add(c, 3.0)
    assert len(wheel) == 3
    assert wheel.expire(0.45, pytest.fail) == 0
    assert wheel.expire(0.5, pytest.fail) == 1 and fired == ["a"]
    assert wheel.expire(1.1, pytest.fail) == 1 and fired == ["a", "b"]  # at most one tick late
    wheel.discard(c)
    assert wheel.expire(10.0, pytest.fail) == 0 and len(wheel) == 0


def test_wheel_rescheduling_and_a_failing_callback() -> None:
    fired: list[str] = []
    errors: list[BaseException] = []
    wheel = DeadlineWheel(0.1)
    a = Item("a", fired)
    wheel.add(a, 0.5)
    wheel.add(a, 2.0)  # one deadline at a time: moved, not doubled
    assert len(wheel) == 1

    class Boom(Item):
        def on_deadline(self) -> None:
            raise RuntimeError("boom")

    wheel.add(Boom("x", fired), 1.0)
    wheel.expire(5.0, errors.append)
    assert fired == ["a"] and len(errors) == 1  # the sweep went on past the failure


def test_pending_sweep_fires_expired_only() -> None:
    fired: list[str] = []
    due, later, none = Item("due", fired), Item("later", fired), Item("none", fired)
    due.expires, later.expires = 1.0, 5.0
    _expire({due, later, none}, 2.0)
    assert fired == ["due"] and due.expires == 0.0 and later.expires == 5.0


def test_limiter_window_limit_and_eviction() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, 10.0, max_entries=4, clock=lambda: now[0])
    assert [limiter.record_failure("a") for _ in range(3)] == [1, 2, 3]
    assert limiter.retry_after("a") == 10 and limiter.retry_after("b") == 0
    now[0] = 9.5
    assert limiter.retry_after("a") == 1  # whole seconds, rounded up
    now[0] = 10.0
    assert limiter.retry_after("a") == 0 and limiter.record_failure("a") == 1  # new window
    for ip in "bcdefgh":
        limiter.record_failure(ip)
    assert len(limiter) <= 4  # bounded: oldest windows dropped first
    assert FailureLimiter(0).retry_after("x") == 0  # limit 0: off


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


class Flowing(ReadFlow):
    __slots__ = ()

    def __init__(self) -> None:
        self.paused = 0
        self.state: State = OPEN
        self.transport: Any = FakeTransport()


def test_reading_resumes_only_when_no_reason_holds() -> None:
    conn = Flowing()
    conn.pause_reading_for(AUTH)
    conn.pause_writing()  # BACKLOG
    conn.pause_reading_for(HTTP)
    assert conn.transport.calls == ["pause"] and conn.write_paused
    conn.resume_reading_for(AUTH)
    conn.resume_writing()
    assert conn.transport.calls == ["pause"] and conn.paused == HTTP
    conn.resume_reading_for(BACKLOG)  # not held: nothing happens
    conn.resume_reading_for(HTTP)
    assert conn.transport.calls == ["pause", "resume"] and conn.paused == 0


def test_a_closed_transport_is_left_alone() -> None:
    conn = Flowing()
    conn.pause_reading_for(AUTH)
    conn.state = CLOSED
    conn.resume_reading_for(AUTH)
    assert conn.transport.calls == ["pause"] and conn.paused == 0
