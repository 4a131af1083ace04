"""A warning logger that says "backend down" once per interval, not once per connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

LOG_INTERVAL = 10.0  # seconds between two warnings of one verifier


class RateLimitedLog:
    """``warn`` logs at most once per ``interval``; the next line counts what it skipped."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last = -interval
        self._suppressed = 0

    def warn(self, msg: str, *args: Any, fields: dict[str, Any] | None = None) -> None:
        now = self._clock()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            msg, args = msg + " (%d similar suppressed)", (*args, suppressed)
        self.logger.warning(msg, *args, extra={"fields": fields} if fields else None)
