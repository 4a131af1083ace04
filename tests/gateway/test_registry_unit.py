"""The registry and the fan-out without sockets: fake members that record what they get."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgpack
import orjson

from gateway.connstate import CLOSING, OPEN, State
from gateway.fanout import close_batch, open_batch, write_all, write_encoded
from gateway.flow import BACKLOG
from gateway.registry import Registry
from gateway.stats import Stats
from protocol.codecs import JSON, MSGPACK, Codec, frame_message
from protocol.frames import FrameParser


class Wire:
    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def write(self, data: bytes) -> None:
        self.data += data
        self.calls += 1


def context(stats: Stats | None = None) -> Any:
    # What the fan-out reads of a context: its counters and the open batch.
    return SimpleNamespace(stats=stats if stats is not None else Stats(), fanout_batch=None)


class Member:
    def __init__(
        self,
        conn_id: str,
        user: str | None = None,
        codec: Codec = JSON,
        stats: Stats | None = None,
        ctx: Any = None,
    ) -> None:
        # What the fan-out counts its inline writes in (the full path counts its own).
        self.ctx = ctx if ctx is not None else context(stats)
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
        if self.cork is not None and not self.paused:
            self.cork.append(frame)
            return True
        self.slow_frames.append(frame)
        return True

    def _flush(self) -> None:
        cork, self.cork = self.cork, None
        if cork:
            self.transport.write(b"".join(cork))

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
    assert backed_up.slow_frames == [frame] and not backed_up.transport.data
    assert corked.cork == [frame] and not corked.transport.data  # write_frame corked it
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


def test_a_batch_writes_each_peer_once_with_every_frame_in_order() -> None:
    ctx = context()
    a, b, c = (Member(str(i), ctx=ctx) for i in range(1, 4))
    backed_up = Member("9", ctx=ctx)
    backed_up.paused = BACKLOG
    one, three = frame_message(JSON, {"n": 1}), frame_message(JSON, {"n": 3})
    batch = open_batch(ctx)
    assert batch is not None and ctx.fanout_batch is batch
    assert open_batch(ctx) is None  # nested: the outer batch writes
    assert write_all([a, b, c, backed_up], one, exclude=c) == 3
    assert write_encoded([a, b, c], {"n": 2}) == 3
    assert write_all([a], three) == 1
    # Nothing is written before the batch closes but a backed-up peer's full path.
    assert (a.transport.calls, b.transport.calls, c.transport.calls) == (0, 0, 0)
    assert backed_up.slow_frames == [one]
    close_batch(ctx, None)  # the nested one: nothing to do
    assert ctx.fanout_batch is batch
    close_batch(ctx, batch)
    assert ctx.fanout_batch is None
    assert (a.transport.calls, b.transport.calls, c.transport.calls) == (1, 1, 1)
    assert a.received() == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert b.received() == [{"n": 1}, {"n": 2}]
    assert c.received() == [{"n": 2}]
    # The fan-out counts the frame that corks a peer; the ones that follow take the
    # peer's write_frame (it counts them itself: the real one does, this fake does not).
    assert ctx.stats.ws_messages_sent == 3
    # After the batch, writes go out at once again.
    write_all([a], one)
    assert a.transport.calls == 2
