"""One TCP connection of the gateway, split by job (see ``base`` for why one class).

* ``contracts``  what routes implement (``WsHandler``, ``HttpHandler``)
* ``base``       slots, state moves, deadlines, identity
* ``writer``     frames out, the cork, per-connection deflate, slow consumers
* ``closing``    closing handshake, failing, aborting, deadlines firing
* ``upgrade``    admission checks and the 101
* ``http1``      HTTP/1.1 requests, keep-alive, pipelining, async handlers
* ``core``       the ``asyncio.Protocol`` callbacks, dispatch, authentication hand-off
"""

from gateway.connection import core
from gateway.connection.contracts import HttpHandler, Routes, WsHandler
from gateway.connection.core import Connection
from gateway.connstate import (
    AUTHENTICATING,
    AWAITING_AUTH,
    CLOSED,
    CLOSING,
    HANDSHAKE,
    HTTP,
    OPEN,
    State,
)
from protocol import frames, handshake
from protocol.purepy import compiled

# Which form of the hot path this process runs: "compiled" (Cython and the C request
# scan, built by setup.py when a compiler is there) or "pure-python" (no compiler, or
# UVGATE_PURE_PYTHON=1).
HOT_PATH = (
    "compiled" if compiled(frames) and compiled(core) and handshake.USES_SPEEDUPS else "pure-python"
)

__all__ = [
    "AUTHENTICATING",
    "AWAITING_AUTH",
    "CLOSED",
    "CLOSING",
    "HANDSHAKE",
    "HOT_PATH",
    "HTTP",
    "OPEN",
    "Connection",
    "HttpHandler",
    "Routes",
    "State",
    "WsHandler",
]
