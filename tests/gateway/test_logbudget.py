"""LogBudget: the first lines of each kind, then a count (gateway/logbudget.py)."""

from __future__ import annotations

import logging

import pytest

from gateway.logbudget import MAX_SUPPRESSED_LINES, LogBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, object]]]:
    return [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]


def test_per_key_budget_then_one_suppressed_line_per_key(caplog):
    caplog.set_level(logging.WARNING, "t.budget")
    clock = Clock()
    budget = LogBudget(logging.getLogger("t.budget"), per_key=2, interval=10.0, clock=clock)
    for _ in range(5):
        budget.log(("401", "1.2.3.4"), "refused", {"ip": "1.2.3.4"})
    assert budget.log(("404", "5.6.7.8"), "refused", {"ip": "5.6.7.8"})
    assert len(caplog.records) == 3
    budget.flush()  # the interval is not over: nothing yet
    assert len(caplog.records) == 3
    clock.now += 10.0
    budget.flush()
    assert lines(caplog)[3:] == [
        ("refused: similar lines suppressed", {"ip": "1.2.3.4", "suppressed": 3, "seconds": 10.0})
    ]
    # A new interval: the budget is back.
    assert budget.log(("401", "1.2.3.4"), "refused", {"ip": "1.2.3.4"})


def test_total_budget_and_bounded_keys(caplog):
    caplog.set_level(logging.WARNING, "t.budget")
    clock = Clock()
    budget = LogBudget(
        logging.getLogger("t.budget"), per_key=1, total=3, max_keys=5, interval=1.0, clock=clock
    )
    for i in range(8):
        budget.log(i, "refused", {"n": i})
    assert [f["n"] for _, f in lines(caplog)] == [0, 1, 2]
    # The next line of a new interval reports first what the last one dropped.
    clock.now += 1.0
    budget.log("new", "refused", {"n": "new"})
    messages = lines(caplog)[3:]
    assert messages[-1] == ("refused", {"n": "new"})
    # keys 3 and 4 were kept and suppressed; 5, 6, 7 were beyond max_keys: one summary
    assert messages[0] == (
        "similar lines suppressed",
        {"suppressed": 5, "keys": 3, "seconds": 1.0},
    )


def test_many_suppressed_keys_are_one_summary_line(caplog):
    caplog.set_level(logging.WARNING, "t.budget")
    clock = Clock()
    budget = LogBudget(logging.getLogger("t.budget"), per_key=1, total=10_000, clock=clock)
    for i in range(MAX_SUPPRESSED_LINES + 1):
        budget.log(i, "refused", {})
        budget.log(i, "refused", {})
    clock.now += 60.0
    budget.flush()
    assert lines(caplog)[-1][0] == "similar lines suppressed"
    assert lines(caplog)[-1][1]["suppressed"] == MAX_SUPPRESSED_LINES + 1
    assert len(caplog.records) == MAX_SUPPRESSED_LINES + 2
