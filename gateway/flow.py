"""Read flow control: the one owner of ``pause_reading`` / ``resume_reading``.

A connection stops reading for several independent reasons, each a named bit of
``paused``; reading resumes only when no reason holds (uvicorn's ``flow_control.py`` is
the model). The reasons:

* ``BACKLOG``: the peer reads slower than we write (the transport called
  ``pause_writing``): an echo-style client must not make us buffer without bound;
* ``AUTH``: an async verifier is deciding; messages already parsed wait in ``held``;
* ``HTTP``: an async HTTP handler is answering; pipelined requests wait their turn;
* ``ENGINE``: an async state operation (a cluster engine) must finish before the next
  message of this connection is handled, so a connection's operations keep their order.

The base class of the connection, not an object per connection: a gateway holds
connections by the hundred thousand, and an int slot costs 8 bytes where an object costs
~56. It does not subclass ``asyncio.Protocol``: the connection defines every callback of
it, and the compiled form (``flow.pxd``) is an extension type, which cannot derive from a
Python class; the transports call the callbacks by name.
"""

from __future__ import annotations

from typing import Any

from gateway.connstate import CLOSED, State

BACKLOG = 1
AUTH = 2
HTTP = 4
ENGINE = 8


class ReadFlow:
    __slots__ = ("paused", "state", "transport")
    paused: int  # the reasons reading is paused, or 0
    state: State  # the connection's (gateway.connstate)
    transport: Any

    def pause_reading_for(self, reason: int) -> None:
        if not self.paused and self.state is not CLOSED:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading_for(self, reason: int) -> None:
        paused = self.paused
        if paused & reason:
            self.paused = paused = paused & ~reason
            if not paused and self.state is not CLOSED:
                self.transport.resume_reading()

    @property
    def write_paused(self) -> bool:
        """The peer has fallen behind (its unread data is over the high-water mark)."""
        return bool(self.paused & BACKLOG)

    # asyncio.Protocol's flow-control callbacks, called by the transport.
    def pause_writing(self) -> None:
        self.pause_reading_for(BACKLOG)

    def resume_writing(self) -> None:
        self.resume_reading_for(BACKLOG)
