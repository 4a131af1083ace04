"""Autobahn|Testsuite (kosoku) against the echo target, for every test run.

All of 1.* to 10.* (about 300 cases, ~15 s) must be OK: no NON-STRICT. The only other
behavior accepted is INFORMATIONAL, and only for the cases whose own case file says they
are informational whatever happens (7.1.6, 7.13.1, 7.13.2: their outcome is left open by
RFC 6455). A few permessage-deflate cases run too; the whole of 12.*/13.* takes ~10
minutes and is ``make conformance`` (tests/conformance/run.py, RESULTS.md).
"""

from __future__ import annotations

import importlib.util
import time
from functools import cache
from pathlib import Path

import pytest

from tests.conformance.run import PLAIN_CASES, CaseResult, format_summary, run_pass

pytest.importorskip("kosoku", reason="kosoku (Autobahn case runner) is not installed")

# Small messages of each data set and each deflate offer / accept combination,
# plain and auto-fragmented (12.x.11 fragments 8 KiB messages into 256 bytes).
DEFLATE = ["12.1.1", "12.2.2", "12.3.3", "12.5.11", *(f"13.{i}.1" for i in range(1, 8)), "13.7.11"]


@cache
def _cases_dir() -> Path:
    spec = importlib.util.find_spec("kosoku.cases")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def informational_by_definition(case_id: str) -> bool:
    """True when the suite's case file sets INFORMATIONAL unconditionally."""
    source = _cases_dir() / f"case{case_id.replace('.', '_')}.py"
    return source.is_file() and "self.behavior = Case.INFORMATIONAL" in source.read_text()


def not_ok(result: CaseResult) -> bool:
    if result.behavior == "OK" and result.behavior_close == "OK":
        return False
    return not (
        result.behavior == "INFORMATIONAL"
        and result.behavior_close == "INFORMATIONAL"
        and informational_by_definition(result.case_id)
    )


def test_informational_cases_are_the_ones_the_suite_defines() -> None:
    assert informational_by_definition("7.1.6")
    assert informational_by_definition("7.13.2")
    assert not informational_by_definition("6.4.3")
    assert not informational_by_definition("7.1.5")


def test_autobahn_1_to_10_all_ok(tmp_path: Path) -> None:
    result = run_pass(
        "plain",
        PLAIN_CASES,
        tmp_path,
        deflate=False,
        deadline=time.monotonic() + 100,
        verbose=False,
    )
    summary = format_summary([result])
    assert not result.incomplete, summary
    assert len(result.cases) >= 300, summary  # 301 cases in 1.*-10.*
    bad = sorted(
        f"{c.case_id} {c.behavior}/{c.behavior_close}" for c in result.cases.values() if not_ok(c)
    )
    assert not bad, f"{bad}\n{summary}"


def test_autobahn_deflate_subset(tmp_path: Path) -> None:
    result = run_pass(
        "deflate", DEFLATE, tmp_path, deflate=True, deadline=time.monotonic() + 90, verbose=False
    )
    summary = format_summary([result])
    assert not result.incomplete, summary
    assert len(result.cases) >= len(DEFLATE), summary
    # The client offered permessage-deflate and the server took it: nothing skipped.
    bad = sorted(c.case_id for c in result.cases.values() if not_ok(c))
    assert not bad, f"{bad}\n{summary}"
