"""The one fan-out: encode once, write the same bytes to many connections.

Used by the registry's broadcasts and by every Pusher delivery. A message is serialised
and framed once per codec in use (almost always one) and the same ``bytes`` object is
written to each transport. A connection that cannot take a frame (not open, or backed
up past ``max_send_buffer``) is skipped, and a slow consumer is closed with 4413 by its
own ``write_frame``, never here.

Iteration is over a snapshot: a write can close a slow consumer, which removes it from
the very set being iterated (a channel's subscribers, a group).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gateway.connstate import OPEN, State
from protocol.codecs import Codec, frame_message


class Peer(Protocol):
    """What the fan-out needs of a connection."""

    ctx: Any  # its stats count what the inline path writes
    id: str
    state: State
    paused: int
    cork: list[bytes] | None
    codec: Codec
    transport: Any

    def write_frame(self, frame: bytes) -> bool: ...


def write_all(peers: Iterable[Peer], frame: bytes, exclude: Peer | None = None) -> int:
    """Write ``frame`` to every peer but ``exclude``; return how many took it."""
    sent = inline = 0
    last: Peer | None = None
    for peer in tuple(peers):
        if peer is exclude:
            continue
        # The common case inline (open, reading, not inside its own read); anything else
        # takes write_frame's full path (slow consumer check, cork, closed), which counts.
        if peer.state is OPEN and not peer.paused and peer.cork is None:
            peer.transport.write(frame)
            inline += 1
            last = peer
        elif peer.write_frame(frame):
            sent += 1
    if last is not None:
        # Counted once per fan-out (all peers share one gateway's stats).
        stats = last.ctx.stats
        stats.ws_messages_sent += inline
        stats.ws_sent_bytes += inline * len(frame)
    return sent + inline


def write_encoded(peers: Iterable[Peer], message: Any, exclude: Peer | None = None) -> int:
    """Encode ``message`` once per codec of the peers (JSON, MessagePack) and write it."""
    frames: dict[Codec, bytes] = {}
    last_codec: Codec | None = None
    frame = b""
    sent = 0
    inline = counted = 0  # messages and bytes the inline writes add to the counters
    last: Peer | None = None
    for peer in tuple(peers):
        if peer is exclude:
            continue
        codec = peer.codec
        if codec is not last_codec:
            last_codec = codec
            cached = frames.get(codec)
            if cached is None:
                cached = frames[codec] = frame_message(codec, message)
            frame = cached
        if peer.state is OPEN and not peer.paused and peer.cork is None:
            peer.transport.write(frame)
            inline += 1
            counted += len(frame)
            last = peer
        elif peer.write_frame(frame):
            sent += 1
    if last is not None:
        stats = last.ctx.stats
        stats.ws_messages_sent += inline
        stats.ws_sent_bytes += counted
    return sent + inline
