"""The connection state machine driven byte by byte through a recording transport.

No Gateway here: a connection is built from a ``ConnectionContext`` and a router whose
one route is the native handler, itself built from its parts (auth gate, echo app).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.applications.chat import ChatApplication
from gateway.applications.echo import EchoApplication
from gateway.auth import AuthGate
from gateway.connection import CLOSED, OPEN, Connection
from gateway.context import ConnectionContext
from gateway.liveness import Heartbeat
from gateway.native import NativeHandler
from gateway.router import Router
from gateway.tokens import issue_token
from gateway.verifiers import HmacVerifier
from protocol.frames import (
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    CloseFrame,
    FrameParser,
    Pong,
    TextMessage,
    encode_client_frame,
)
from tests.gwtest import RecordingTransport, upgrade_request

SECRET = "unit-secret"


def frames_of(data: bytes) -> list[Any]:
    return FrameParser(require_mask=False, max_message_size=1 << 20).feed(data)


class Parts:
    def __init__(self, app: str = "echo") -> None:
        self.ctx = ConnectionContext.standalone(node_id=3)
        ctx = self.ctx
        gate = AuthGate(HmacVerifier(secret=SECRET), ctx.limiter, ctx.stats, ctx.tasks)
        native = NativeHandler(
            gate,
            EchoApplication() if app == "echo" else ChatApplication(ctx.registry),
            tasks=ctx.tasks,
            stats=ctx.stats,
            heartbeat=Heartbeat(30.0, 120.0),
            auth_timeout=10.0,
        )
        self.router = Router()
        self.router.route_ws("/ws", native)


def open_connection(gw: Parts) -> tuple[Connection, RecordingTransport]:
    conn = Connection(gw.ctx, gw.router)
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(upgrade_request())
    auth = b'{"type":"auth","token":"' + issue_token(SECRET, "u").encode() + b'"}'
    conn.data_received(encode_client_frame(OP_TEXT, auth))
    assert conn.state is OPEN
    transport.writes.clear()
    return conn, transport


@pytest.fixture
def gw() -> Parts:
    return Parts()


def test_pipelined_messages_leave_in_one_write_in_order(gw):
    conn, t = open_connection(gw)
    batch = b"".join(encode_client_frame(OP_TEXT, f"m{i}".encode()) for i in range(5))
    conn.data_received(batch)
    assert len(t.writes) == 1  # five echoes, one send()
    assert frames_of(t.writes[0]) == [TextMessage(f"m{i}") for i in range(5)]


def test_a_close_in_the_batch_stays_behind_the_data_and_precedes_the_tcp_close(gw):
    conn, t = open_connection(gw)
    batch = (
        encode_client_frame(OP_TEXT, b"a")
        + encode_client_frame(OP_PING, b"p")
        + encode_client_frame(OP_TEXT, b"b")
        + encode_client_frame(OP_CLOSE, b"\x03\xe8")
        + encode_client_frame(OP_TEXT, b"ignored after close")
    )
    conn.data_received(batch)
    assert t.closed and conn.state is CLOSED
    assert frames_of(b"".join(t.writes)) == [
        TextMessage("a"),
        Pong(b"p"),
        TextMessage("b"),
        CloseFrame(1000, ""),
    ]


def _text(obj: Any) -> bytes:
    return encode_client_frame(OP_TEXT, orjson.dumps(obj))


def test_a_burst_of_publishes_reaches_each_subscriber_in_one_write() -> None:
    gw = Parts("chat")
    publisher, pt = open_connection(gw)
    subscribers = [open_connection(gw) for _ in range(3)]
    for conn, t in [(publisher, pt), *subscribers]:
        conn.data_received(_text({"type": "join", "group": "g"}))
        t.writes.clear()
    burst = b"".join(_text({"type": "publish", "group": "g", "data": i}) for i in range(3))
    publisher.data_received(burst)
    expected = [{"type": "message", "group": "g", "from": "u", "data": i} for i in range(3)]
    for _, t in [(publisher, pt), *subscribers]:
        assert len(t.writes) == 1  # three deliveries, one send()
        assert [orjson.loads(f.data) for f in frames_of(t.writes[0])] == expected
    assert gw.ctx.fanout_batch is None
    # One publish in one read is written at once, as before.
    publisher.data_received(_text({"type": "publish", "group": "g", "data": 9}))
    assert all(len(t.writes) == 2 for _, t in subscribers)


def test_single_message_is_written_at_once(gw):
    conn, t = open_connection(gw)
    conn.data_received(encode_client_frame(OP_TEXT, b"solo"))
    assert frames_of(t.writes[0]) == [TextMessage("solo")]


def test_peer_ip_is_kept_and_port_read_back(gw):
    conn, _ = open_connection(gw)
    assert conn.ip == "10.1.2.3"
    assert conn.peer == ("10.1.2.3", 5555)
