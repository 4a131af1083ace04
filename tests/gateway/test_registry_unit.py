"""The registry and the fan-out without sockets: fake members that record what they get."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgpack
import orjson

from gateway.connstate import CLOSING, OPEN, State
from gateway.fanout import write_all, write_encoded
from gateway.flow import BACKLOG
from gateway.registry import Registry
from gateway.stats import Stats
from protocol.codecs import JSON, MSGPACK, Codec
from protocol.frames import FrameParser


class Wire:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


class Member:
    def __init__(
        self, conn_id: str, user: str | None = None, codec: Codec = JSON, stats: Stats | None = None
    ) -> None:
        # What the fan-out counts its inline writes in (the full path counts its own).
        self.ctx = SimpleNamespace(stats=stats if stats is not None else Stats())
        self.id = conn_id
        self.user = user
        self.groups: set[str] | None = None
        self.state: State = OPEN
        self.paused = 0
        self.cork: list[bytes] | None = None
        self.codec = codec
        self.transport = Wire()
        self.closed: tuple[int, str] | None = None
        self.slow_frames: list[bytes] = []

    def write_frame(self, frame: bytes) -> bool:
        # The full path: only taken when the inline fast path does not apply.
        if self.state is not OPEN:
            return False
        self.slow_frames.append(frame)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.state = CLOSING

    def send(self, message: Any) -> bool:
        return write_encoded([self], message) == 1

    def received(self) -> list[Any]:
        raw = bytes(self.transport.data) + b"".join(self.slow_frames)
        events = FrameParser(require_mask=False).feed(raw)
        return [self.codec.decode(e.data) for e in events]


def test_indexes_stay_consistent() -> None:
    reg: Registry[Member] = Registry()
    a1, a2, b = Member("1.1", "alice"), Member("1.2", "alice"), Member("1.3", "bob")
    for m in (a1, a2, b):
        reg.add(m)
    assert reg.count() == 3 and reg.count(user="alice") == 2 and "1.3" in reg
    assert reg.join(a1, "room") and reg.join("1.3", "room") and not reg.join("9.9", "room")
    assert sorted(m.id for m in reg.members("room")) == ["1.1", "1.3"]
    reg.remove(a1)
    reg.remove(a1)  # twice is fine
    assert reg.count(user="alice") == 1 and reg.of_user("alice") == [a2]
    assert [m.id for m in reg.members("room")] == ["1.3"] and a1.groups is None
    assert reg.leave(b, "room") and not reg.leave(b, "room")
    assert reg.groups() == [] and sorted(reg.users()) == ["alice", "bob"]
    reg.remove(a2)
    reg.remove(b)
    assert len(reg) == 0 and reg.users() == [] and reg.groups() == []


def test_broadcast_encodes_once_per_codec_and_excludes() -> None:
    reg: Registry[Member] = Registry()
    j1, j2, m1 = Member("1.1"), Member("1.2"), Member("1.3", codec=MSGPACK)
    for m in (j1, j2, m1):
        reg.add(m)
        reg.join(m, "g")
    message = {"hello": [1, 2]}
    assert reg.broadcast("g", message, exclude="1.2") == 2
    assert j1.received() == [message] and m1.received() == [message] and j2.received() == []
    assert bytes(j1.transport.data).endswith(orjson.dumps(message))
    assert bytes(m1.transport.data).endswith(msgpack.packb(message))
    assert reg.broadcast(["1.2", "9.9"], {"x": 1}) == 1
    assert reg.broadcast(None, {"all": True}) == 3
    assert reg.send_to_user("nobody", {}) == 0


def test_the_fast_path_is_only_for_open_idle_uncorked_members() -> None:
    frame = b"\x81\x01x"
    stats = Stats()
    idle, backed_up, corked, closing = (Member(str(i), stats=stats) for i in range(1, 5))
    backed_up.paused = BACKLOG
    corked.cork = []
    closing.state = CLOSING
    assert write_all([idle, backed_up, corked, closing], frame) == 3
    assert bytes(idle.transport.data) == frame and not idle.slow_frames
    for member in (backed_up, corked):  # the full path decides (slow consumer, cork)
        assert member.slow_frames == [frame] and not member.transport.data
    assert not closing.transport.data and not closing.slow_frames
    # The inline write is counted once here (write_frame counts the others itself).
    assert (stats.ws_messages_sent, stats.ws_sent_bytes) == (1, len(frame))


def test_close_by_id_and_by_user() -> None:
    reg: Registry[Member] = Registry()
    a1, a2 = Member("1.1", "alice"), Member("1.2", "alice")
    reg.add(a1)
    reg.add(a2)
    assert reg.close("1.1", 4000, "bye") and a1.closed == (4000, "bye")
    assert not reg.close("7.7")
    assert reg.close_user("alice", 4001) == 2 and a2.closed == (4001, "")
