"""Replay every fuzz corpus and crash file through its target (no atheris needed).

A crash input stays here after its fix, so the bug cannot come back unnoticed; the
corpora replay the coverage ``make fuzz`` reached, with every target's properties.
"""

from __future__ import annotations

import traceback

import pytest

from .targets import CRASHES_DIR, TARGETS, inputs, load


@pytest.mark.parametrize("target", TARGETS)
def test_replay(target: str) -> None:
    check = load(target)
    files = inputs(target)
    assert files, f"no corpus for {target}: run python -m tests.fuzz.seeds"
    failures = []
    for path in files:
        try:
            check(path.read_bytes())
        except Exception:
            failures.append(f"{path}:\n{traceback.format_exc(limit=-3)}")
    assert not failures, f"{len(failures)} of {len(files)} inputs fail:\n" + "\n".join(failures)


def test_issue_11_crash_inputs_are_kept() -> None:
    # The three inputs of issue 11 and the audit's findings replay in every run.
    names = {p.name for p in CRASHES_DIR.glob("*/*")}
    assert {
        "issue11-crash1-non-ascii-key",
        "issue11-crash2-superscript-window-bits",
        "issue11-crash2-negotiate",
        "issue11-crash3-pipelined-198",
        "audit-deep-client-event-data",
        "audit-deep-presence-user-info",
    } <= names
