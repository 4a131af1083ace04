"""Echo every message back with the same opcode: the conformance and benchmark target."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.connection import Connection


class EchoApplication:
    def on_connect(self, conn: Connection) -> None:
        return None

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        conn.send_raw(data)

    def on_close(self, conn: Connection, code: int) -> None:
        return None
