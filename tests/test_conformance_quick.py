"""A quick Autobahn|Testsuite subset (kosoku) against the echo target, for every test run.

The full suite is ``make conformance`` (tests/conformance/run.py); this picks the groups
that run in seconds: framing, pings, reserved bits and opcodes, fragmentation, UTF-8,
closing, one big message, and a few permessage-deflate echoes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conformance.run import format_summary, run_pass

pytest.importorskip("kosoku", reason="kosoku (Autobahn case runner) is not installed")

PLAIN = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.1.*", "6.2.*", "6.3.*", "7.*", "9.1.1", "10.*"]
# Small messages of each data set and each deflate offer / accept combination,
# plain and auto-fragmented (12.x.11 fragments 8 KiB messages into 256 bytes).
DEFLATE = ["12.1.1", "12.2.2", "12.3.3", "12.5.11", *(f"13.{i}.1" for i in range(1, 8)), "13.7.11"]


@pytest.mark.parametrize(
    ("deflate", "patterns"), [(False, PLAIN), (True, DEFLATE)], ids=["plain", "deflate"]
)
def test_autobahn_quick_subset(tmp_path: Path, deflate: bool, patterns: list[str]) -> None:
    result = run_pass(
        "deflate" if deflate else "plain",
        patterns,
        tmp_path,
        deflate=deflate,
        deadline=time.monotonic() + 90,
        verbose=False,
    )
    summary = format_summary([result])
    assert not result.incomplete, summary
    assert not result.failed, summary
    assert len(result.cases) >= len(patterns), summary
    if deflate:
        # The client offered permessage-deflate and the server took it: nothing skipped.
        assert "UNIMPLEMENTED" not in result.counts(), summary
