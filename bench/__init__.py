"""uvgate-bench: a load generator for any WebSocket server, and uvgate's comparison driver.

Standalone: needs uvloop (and matplotlib for charts), never imports the gateway.
See bench/README.md; the command line is ``uvgate-bench`` / ``python -m bench``.
"""

from .config import RunConfig
from .guard import RemoteTargetError, check_target
from .runner import BenchError, run
from .tokens import issue_token

__all__ = ["BenchError", "RemoteTargetError", "RunConfig", "check_target", "issue_token", "run"]
