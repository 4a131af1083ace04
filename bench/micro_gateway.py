"""Micro benchmark of the gateway's per-connection and per-message Python work.

Drives ``gateway.connection.Connection`` through a fake transport (no sockets, no
syscalls), so the figure is the interpreter work uvgate adds on top of the event
loop: handshake + HMAC auth + ack + close per connection, and one small echoed
message. Socket and loop costs come on top; ``python -m bench compare`` measures
those end to end.

    python -m bench.micro_gateway
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.config import Config
from gateway.connection import Connection
from gateway.server import Gateway
from gateway.tokens import issue_token
from protocol.frames import OP_CLOSE, OP_TEXT, encode_client_frame

SECRET = "micro-secret"
REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:6001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport:
    __slots__ = ("closed", "written")

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


def run(n_conn: int = 20000, n_msg: int = 200000) -> dict[str, float]:
    async def main() -> dict[str, float]:
        gw = Gateway(Config(secret=SECRET, node_id=1, pusher=False))
        gw.state.accepting = True
        gw.timers.now = asyncio.get_running_loop().time()
        auth = encode_client_frame(
            OP_TEXT, b'{"type":"auth","token":"' + issue_token(SECRET, "u", 3600).encode() + b'"}'
        )
        close = encode_client_frame(OP_CLOSE, b"\x03\xe8")

        def Conn(gw: Gateway) -> Connection:
            return Connection(gw.ctx, gw.router)

        start = time.perf_counter()
        for _ in range(n_conn):
            conn = Conn(gw)
            t = FakeTransport()
            conn.connection_made(t)  # type: ignore[arg-type]
            conn.data_received(REQUEST)
            conn.data_received(auth)
            conn.data_received(close)
            conn.connection_lost(None)
        per_conn = (time.perf_counter() - start) / n_conn * 1e6
        conn = Conn(gw)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(REQUEST)
        conn.data_received(auth)
        msg = encode_client_frame(OP_TEXT, b"x" * 32)
        start = time.perf_counter()
        for _ in range(n_msg):
            conn.data_received(msg)
        per_msg = (time.perf_counter() - start) / n_msg * 1e6
        # The raw probe (bench/peers/raw_probe.py) doing the same job, same transport.
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).parent / "peers"))
        from raw_probe import Probe

        key = SECRET.encode()
        start = time.perf_counter()
        for _ in range(n_conn):
            probe = Probe(key, False)
            probe.connection_made(FakeTransport())
            probe.data_received(REQUEST)
            probe.data_received(auth)
            probe.data_received(close)
            probe.connection_lost(None)
        raw_conn = (time.perf_counter() - start) / n_conn * 1e6
        probe = Probe(key, False)
        probe.connection_made(FakeTransport())
        probe.data_received(REQUEST)
        probe.data_received(auth)
        start = time.perf_counter()
        for _ in range(n_msg):
            probe.data_received(msg)
        raw_msg = (time.perf_counter() - start) / n_msg * 1e6
        return {
            "us_per_connection": per_conn,
            "raw_probe_us_per_connection": raw_conn,
            "ratio_connection": per_conn / raw_conn,
            "us_per_echo_message": per_msg,
            "raw_probe_us_per_echo_message": raw_msg,
            "ratio_message": per_msg / raw_msg,
        }

    return asyncio.run(main())


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
