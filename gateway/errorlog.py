"""Unexpected errors on a connection: one log line each, rate-limited, no traceback storms.

An exception that escapes a parser or a handler is a bug, but one a client may be able
to trigger at will (a fuzzer, a hostile peer). The connection answers it (400, or close
1011) and reports it here: one structured line with the peer and the error, at most
``BURST`` lines per ``WINDOW`` seconds (then one line saying how many were suppressed),
and the traceback only the first time an error is raised from a given place in the code,
so the bug can be found without letting anyone fill the disk.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

log = logging.getLogger("uvgate.errors")

BURST = 10
WINDOW = 10.0
_MAX_SITES = 1000


class _Budget:
    __slots__ = ("sites", "start", "suppressed", "used")

    def __init__(self) -> None:
        self.start = 0.0
        self.used = 0
        self.suppressed = 0
        self.sites: set[tuple[str, str, int]] = set()


_budget = _Budget()


def _site(exc: BaseException) -> tuple[str, str, int]:
    """Where ``exc`` was raised: its type and the innermost frame of its traceback."""
    tb = exc.__traceback__
    frames = traceback.extract_tb(tb) if tb is not None else []
    if not frames:
        return (type(exc).__name__, "", 0)
    last = frames[-1]
    return (type(exc).__name__, last.filename, last.lineno or 0)


def unexpected(exc: BaseException, conn: Any, where: str, *, clock: Any = time.monotonic) -> None:
    """Log ``exc`` (raised while handling ``conn``'s input ``where``) within the budget."""
    budget = _budget
    now = clock()
    if now - budget.start >= WINDOW:
        if budget.suppressed:
            log.warning(
                "unexpected errors suppressed",
                extra={"fields": {"count": budget.suppressed, "window_s": WINDOW}},
            )
        budget.start = now
        budget.used = 0
        budget.suppressed = 0
    if budget.used >= BURST:
        budget.suppressed += 1
        return
    budget.used += 1
    site = _site(exc)
    first = site not in budget.sites
    if first and len(budget.sites) < _MAX_SITES:
        budget.sites.add(site)
    log.error(
        "unexpected error",
        exc_info=exc if first else None,
        extra={
            "fields": {
                "ip": getattr(conn, "ip", "-") or "-",
                "conn": getattr(conn, "id", "") or "-",
                "state": getattr(getattr(conn, "state", None), "name", "-"),
                "where": where,
                "error": f"{type(exc).__name__}: {exc}"[:200],
            }
        },
    )


def reset() -> None:
    """Forget the budget and the sites seen (tests)."""
    global _budget
    _budget = _Budget()
